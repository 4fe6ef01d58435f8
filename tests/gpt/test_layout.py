"""gpt/ reads in parts: few entries at its top, no import circle (imports inside functions count), the
multi-process run never imported by the loop, and the full run's loop on one screen."""
import ast
import inspect
from pathlib import Path

from gpt.training import pretrain

GPT = Path(__file__).resolve().parents[2] / "gpt"


def _modules(root):
    """{dotted name: path} of every module under ``root`` (a package folder)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(root):
    """{module: the modules of the same package it imports}, every import statement counted (those inside
    functions too); ``from . import x`` points at the module x when there is one."""
    mods = _modules(root)
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets.update(f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names)
        edges = set()
        for target in targets:
            while target not in mods and "." in target:
                target = target.rpartition(".")[0]
            if target in mods and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def circles(graph):
    """The import circles of ``graph``: each a list of modules that reach one another."""
    order, low, stack, found, counter = {}, {}, [], [], [0]

    def visit(v):
        order[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in graph:
        if v not in order:
            visit(v)
    return found


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_gpt_has_at_most_16_entries_at_its_top():
    entries = sorted(p.name for p in GPT.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 16, entries


def test_no_import_circle_in_gpt():
    assert circles(import_graph(GPT)) == []


def test_the_circle_finder_finds_one(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n")      # lazily: still a circle
    assert circles(import_graph(pkg)) == [["pkg.a", "pkg.sub.b"]]


def test_the_loop_never_reaches_the_multi_process_run():
    graph = import_graph(GPT)
    for module in ("gpt.training.pretrain", "gpt.training.simple", "gpt.training.step"):
        assert "gpt.training.parallel" not in reachable(graph, module), module


def test_the_full_run_s_loop_fits_on_one_screen():
    assert len(inspect.getsource(pretrain.loop).splitlines()) <= 60


def test_every_part_is_a_regular_package():
    """A folder of modules without __init__.py imports here but is left out of an install (setuptools'
    find_packages): every part of gpt/ has one."""
    folders = {path.parent for path in GPT.rglob("*.py") if "__pycache__" not in path.parts}
    assert [str(f) for f in sorted(folders) if not (f / "__init__.py").is_file()] == []
