"""The README as a newcomer uses it: every code block runs as pasted, in order, in one empty folder;
then docs/families.md's blocks, in the same folder after the README's (its runs must not collide).

The README's Python blocks run in a fresh interpreter each (as if pasted into ``python``); a docs
page's Python blocks build on each other, so they run as one session. Shell lines run one by one,
``python -m gpt`` and ``python -m bpe`` in this process (the same code, without an interpreter's
start-up each time), ``mpiexec -n N python -m gpt ...`` under mpiexec (left out, with the reason
printed, where mpi4py or mpiexec is missing). What the test leaves out, and why:

* a line marked ``(needs internet)`` or ``(needs the files above)``: CI has no network. A skipped
  ``curl -o FILE`` in the folder is replaced by a small local text, so the lines after it still run;
* ``pip install`` (the package is already installed here) and ``pytest`` (this is pytest);
* time: the README says how to shorten a run (``--max-steps``, ``--eval-batches``, ``--epochs``,
  ``--max-test``, ``--n``, ``--n-per-class``), and long commands get exactly those flags, so the whole walk, training
  and fine-tuning included, takes seconds. The corpus is built once per test session (its cache).
"""
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [ROOT / "docs" / "families.md"]           # walked after the README, in the same folder
SKIP_MARK = re.compile(r"\(needs (internet|the files above)")

# what shortens each long command: only flags the README names for that purpose
SHORTER = {("gpt", "train"): ["--max-steps", "2", "--eval-batches", "1"],
           ("gpt", "finetune", "classify"): ["--epochs", "1"],
           ("gpt", "finetune", "instruct"): ["--epochs", "1", "--max-test", "2"],
           ("gpt", "make-data", "classify"): ["--n-per-class", "30"],
           ("gpt", "make-data", "instruct"): ["--n", "40"]}


def blocks(text):
    """[(language, first line number, code)] of the README's fenced blocks."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"```(\w*)\s*$", lines[i])
        if m:
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].startswith("```"))
            out.append((m.group(1), start + 1, "\n".join(lines[start:end])))
            i = end
        i += 1
    return out


def commands(line):
    """The commands of one shell line (split at ``&&``), comments dropped, as argument lists."""
    words = shlex.split(line, comments=True)
    out, cur = [], []
    for w in words:
        if w == "&&":
            out.append(cur)
            cur = []
        else:
            cur.append(w)
    return [c for c in out + [cur] if c]


def shortened(argv):
    """``argv`` of ``python -m gpt|bpe ...`` with the README's shortening flags for a long command."""
    for key, extra in SHORTER.items():
        if tuple(argv[2:2 + len(key)]) == key:
            return argv + extra
    return argv


def run_python_module(argv, capsys, monkeypatch):
    """``python -m gpt|bpe ARGS`` in this process; returns (status, output)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))           # an interactive command reads end of input
    if argv[2] == "gpt":
        from gpt.__main__ import main
    else:
        from bpe.__main__ import main
    capsys.readouterr()
    try:
        status = main(argv[3:])
    except SystemExit as e:                                     # --help
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def mpi_launcher():
    """(mpiexec's path, the environment for its ranks) as tests/distributed runs them; None, printing
    why, when mpi4py or an mpiexec is missing."""
    sys.path.insert(0, str(ROOT / "tests" / "distributed"))
    try:
        from mpi_helpers import clean_env, mpiexec
    finally:
        sys.path.remove(str(ROOT / "tests" / "distributed"))
    import importlib.util
    if importlib.util.find_spec("mpi4py") is None or mpiexec() is None:
        print("left out: mpiexec lines (mpi4py or mpiexec missing: pip install -e '.[mpi]')")
        return None
    return mpiexec(), clean_env()


def run_mpiexec(argv, work):
    """``mpiexec -n N python -m gpt ...`` (shortened like the same command alone); None when MPI is missing."""
    launcher = mpi_launcher()
    if launcher is None:
        return None
    at = argv.index("python")
    command = [launcher[0], *argv[1:at], sys.executable, *shortened(argv[at:])[1:]]
    r = subprocess.run(command, cwd=work, env=launcher[1], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def run_command(argv, work, capsys, monkeypatch):
    """One shell command of the README; returns (status, output), or None when it is left out."""
    if argv[0] == "pip" or argv[0] == "pytest":
        return None
    if argv[0] == "mpiexec":
        return run_mpiexec(argv, work)
    if argv[:2] == ["python", "-m"] and argv[2] in ("gpt", "bpe"):
        return run_python_module(shortened(argv), capsys, monkeypatch)
    if argv[0] == "python":
        argv = [sys.executable] + argv[1:]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def stand_in_for(line, work):
    """For a skipped ``curl -o FILE`` into the folder: a small local text in FILE, so later lines run."""
    for argv in commands(line):
        if argv[0] == "curl" and "-o" in argv:
            target = work / argv[argv.index("-o") + 1]
            if work in target.resolve().parents:
                from gpt.data.corpus import help_text
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(help_text()[:60_000], encoding="utf-8")


def test_the_readme_has_blocks_of_each_kind_and_marks_only_network_lines():
    found = blocks(README.read_text(encoding="utf-8"))
    assert {lang for lang, _, _ in found} >= {"bash", "python", "text"}
    for lang, start, code in found:
        for n, line in enumerate(code.splitlines(), start):
            if SKIP_MARK.search(line):
                assert re.search(r"curl|download|--gpt2|--hf|load_hf|tiktoken", line), f"README.md:{n}: marked, but why? {line}"
            elif lang == "bash":
                assert not re.search(r"curl|download|--hf ", line), \
                    f"README.md:{n}: needs internet (or files from it), unmarked: add '# (needs internet)'"


def run_python(code, where, work, env):
    """Python code as pasted into a fresh interpreter in ``work``; fails the test, naming ``where``, if it fails."""
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{where}: the Python block fails:\n{r.stdout[-2000:]}{r.stderr[-3000:]}"


def walk(doc, work, capsys, monkeypatch, session=False):
    """Run ``doc``'s blocks in order in ``work``; returns what ran, [(command or "python", line)].

    ``session``: the doc's Python blocks are one interpreter session (each sees the names the earlier
    ones made); they run together where a shell block follows them, or at the end."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    name = doc.relative_to(ROOT)
    ran, pending = [], []

    def flush():
        if pending:
            run_python("\n".join(code for _, code in pending), f"{name}:{pending[0][0]}-{pending[-1][0]}", work, env)
            ran.extend(("python", start) for start, _ in pending)
            pending.clear()

    for lang, start, code in blocks(doc.read_text(encoding="utf-8")):
        if lang == "python":
            if SKIP_MARK.search(code):
                continue
            if session:
                pending.append((start, code))
                continue
            run_python(code, f"{name}:{start}", work, env)
            ran.append(("python", start))
        elif lang == "bash":
            flush()
            for n, line in enumerate(code.splitlines(), start):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if SKIP_MARK.search(line):
                    stand_in_for(line, work)
                    continue
                for argv in commands(line):
                    result = run_command(argv, work, capsys, monkeypatch)
                    if result is None:
                        continue
                    status, output = result
                    assert status == 0, f"{name}:{n}: `{shlex.join(argv)}` exits {status}:\n{output[-3000:]}"
                    ran.append((argv[2] if argv[:2] == ["python", "-m"] else argv[0], n))
    flush()
    return ran


def test_every_readme_block_runs_as_pasted(tmp_path, capsys, monkeypatch):
    work = tmp_path / "newcomer"
    work.mkdir()
    monkeypatch.chdir(work)
    ran = walk(README, work, capsys, monkeypatch)
    assert len([r for r in ran if r[0] == "python"]) >= 4 and len(ran) >= 20, ran
    assert mpi_launcher() is None or [r for r in ran if r[0] == "mpiexec"], "no mpiexec line ran"
    # what the README promises a run leaves, and what its classifier prints
    assert {"metrics.csv", "loss.svg", "checkpoint.json"} <= {p.name for p in (work / "runs" / "tiny").iterdir()}
    from gpt.__main__ import main
    capsys.readouterr()
    assert main(["classify", "--checkpoint", "runs/cls", "Return the number of items."]) == 0
    label, probability, text = capsys.readouterr().out.strip().split("\t")
    assert label in ("doc", "code") and 0.5 <= float(probability) <= 1 and text == "Return the number of items."
    for doc in DOCS:                                 # then the docs, in the same folder, after the README
        assert walk(doc, work, capsys, monkeypatch, session=True), f"{doc}: no block ran"


@pytest.mark.parametrize("line,expected", [
    ('pip install -e . && python -m gpt train   # a comment',
     [["pip", "install", "-e", "."], ["python", "-m", "gpt", "train"]]),
    ('python -m gpt chat --checkpoint runs/sft "Give the \\"type\\" field." --input "a=1"',
     [["python", "-m", "gpt", "chat", "--checkpoint", "runs/sft", 'Give the "type" field.', "--input", "a=1"]]),
])
def test_shell_lines_are_read_as_a_shell_would(line, expected):
    assert commands(line) == expected
