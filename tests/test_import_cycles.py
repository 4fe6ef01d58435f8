"""No import circle inside a package, counting imports inside functions too.

Python hides a circle behind a lazy import (``import x`` inside a function runs only when called), but a
reader still has to hold both files in mind at once. This test reads every import statement of every
module with ``ast`` and fails on any cycle among a package's modules, naming the modules in the circle.

An edge A -> B means a statement in A names module B: ``from . import b``, ``from .b import f``,
``import pkg.b``. Importing a name from a package's ``__init__`` points at the ``__init__``; the
parents that Python runs on the way to a submodule are not counted (every module would otherwise sit in
a circle with its package's ``__init__``).
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ["tinytensor", "bpe", "gpt"]


def modules(package):
    """Dotted module name -> file, for every .py file of ``package``."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(name, path, known):
    """The modules of ``known`` that the file of module ``name`` imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = ((base + "." + node.module) if node.module else base) if node.level else node.module
            for a in node.names:
                child = f"{target}.{a.name}"
                if child in known:                  # from . import submodule
                    out.add(child)
                elif target in known:               # from module import name
                    out.add(target)
    out.discard(name)
    return out


def find_cycle(graph):
    """One import circle of ``graph`` (module -> imported modules) as a list of modules, or None."""
    state = {}                                       # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def import_graph(package):
    known = modules(package)
    return {name: imported(name, path, known) for name, path in known.items()}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    cycle = find_cycle(import_graph(package))
    assert cycle is None, f"{package}: import circle " + " -> ".join(cycle)


def test_the_checker_finds_a_circle_inside_a_function(tmp_path, monkeypatch):
    pkg = tmp_path / "circ"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import g\n")
    (pkg / "c.py").write_text("from .a import x\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert find_cycle(import_graph("circ")) == ["circ.a", "circ.b", "circ.c", "circ.a"]
