"""The learner's core stays small enough to read, as tinygrad keeps its own line budget.

A group is the files a learner reads to understand one part; its cap is the most code lines it may hold.
Code lines: a line that holds Python code. Blank lines, comment lines and docstrings (the string that opens
a module, class or function) are not counted; a statement spread over three lines counts three.

What is not the math lives outside the core and is not counted: the schedules (``tinytensor/schedule/``:
threads, blocks, BLAS holding, ``parallel.py``, heap tuning in ``heap.py``), memory reuse (``accumulate.py``:
gradient buffers reused in place, ``memory.py``), CUDA (``tinytensor/cuda/``: ``kernels.py``, ``blas.py``,
``flash_attention.py``; and ``backend.py``), mixed precision (``amp.py``, ``grad_scaler.py``), many processes
(``tinytensor/distributed/``, DistributedDataParallel included), files (``serialize.py``), instruments
(``trace.py``, ``graphviz.py``, ``anomaly.py``) and the testing tools (``gradcheck.py``, ``testing.py``).
The README's "Line budget" section states the caps and the counts.
"""
import ast
import io
import pathlib
import tokenize

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: group -> (paths: files, or folders whose .py files all count; the cap in code lines)
BUDGET = {
    "engine core": (["tinytensor/tensor.py", "tinytensor/function.py", "tinytensor/grad_mode.py",
                     "tinytensor/versions.py", "tinytensor/autograd.py", "tinytensor/ops", "tinytensor/nn", "tinytensor/optim.py",
                     "tinytensor/reference.py", "tinytensor/twins.py"], 2400),
    "gpt models and simple loop": (["gpt/models", "gpt/training/simple.py"], 700),
}

_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
             tokenize.ENDMARKER, tokenize.ENCODING}


def code_lines(source):
    """The number of lines of ``source`` that hold code (not blank, not only a comment, not a docstring)."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docstrings)
    return len(lines)


def files(paths):
    """Every .py file the paths name (folders: all of theirs, recursively); a missing path is an error."""
    out = []
    for p in paths:
        path = ROOT / p
        assert path.exists(), f"line budget: {p} does not exist (moved? update BUDGET)"
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def count(paths):
    return sum(code_lines(f.read_text(encoding="utf-8")) for f in files(paths))


@pytest.mark.parametrize("group", sorted(BUDGET))
def test_the_group_stays_within_its_cap(group):
    paths, cap = BUDGET[group]
    n = count(paths)
    assert n <= cap, (f"{group}: {n} code lines, over its cap of {cap}; move what is not the math (schedules, "
                      "memory tuning, GPU, many processes) out of the core, or say in the README why the cap moves")


def test_code_lines_skip_blanks_comments_and_docstrings():
    source = '''"""Module docstring,
on two lines."""
import math   # a comment after code


def f(x):
    """f's docstring."""
    # a comment line
    return (x +
            math.pi)


class C:
    """C's docstring."""
    doc = """a string that is data, not a docstring"""
'''
    assert code_lines(source) == 6      # import, def, return over 2 lines, class, doc
