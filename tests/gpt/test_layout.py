"""gpt/ reads in parts: few entries at its top, every part a package, the multi-process run never imported
by the loop, and the full run's loop on one screen (no import circle: tests/test_import_cycles.py)."""
import inspect
from pathlib import Path

from gpt.training import pretrain
from test_import_cycles import import_graph

GPT = Path(__file__).resolve().parents[2] / "gpt"


def reachable(graph, start):
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_gpt_has_at_most_16_entries_at_its_top():
    entries = sorted(p.name for p in GPT.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 16, entries


def test_every_part_is_a_regular_package():
    """A folder of modules without __init__.py imports here but is left out of an install (setuptools'
    find_packages): every part of gpt/ has one."""
    folders = {path.parent for path in GPT.rglob("*.py") if "__pycache__" not in path.parts}
    assert [str(f) for f in sorted(folders) if not (f / "__init__.py").is_file()] == []


def test_the_loop_never_reaches_the_multi_process_run():
    graph = import_graph("gpt")
    assert "gpt.training.parallel" in reachable(graph, "gpt.training.launch")       # the reachability is real
    for module in ("gpt.training.pretrain", "gpt.training.simple", "gpt.training.step"):
        assert "gpt.training.parallel" not in reachable(graph, module), module


def test_the_full_run_s_loop_fits_on_one_screen():
    assert len(inspect.getsource(pretrain.loop).splitlines()) <= 60
