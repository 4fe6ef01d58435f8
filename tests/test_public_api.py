"""Every public name that ../shared/API.md promises exists: its imports run, and each ``alias.name`` its
code blocks use (comments aside) is an attribute of the module the alias stands for.

The file lives beside the repository, as ../shared/data does; without it the test skips."""
import importlib
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1].parent / "shared" / "API.md"


def _code():
    """The Python of API.md's code blocks, each line's comment removed."""
    blocks = re.findall(r"```python\n(.*?)```", API.read_text(encoding="utf-8"), re.S)
    return [line.split("#")[0].rstrip() for block in blocks for line in block.splitlines()]


def _aliases(lines):
    """alias -> module object, from the blocks' own import lines (which must all run)."""
    found = {}
    for line in lines:
        if m := re.fullmatch(r"import ([\w.]+)(?: as (\w+))?", line):
            found[m[2] or m[1]] = importlib.import_module(m[1])
        elif m := re.fullmatch(r"from ([\w.]+) import ([\w, ]+)", line):
            module = importlib.import_module(m[1])
            for name in (n.strip() for n in m[2].split(",")):
                found[name] = getattr(module, name)          # AttributeError: a promised name is missing
    return found


@pytest.mark.skipif(not API.is_file(), reason="../shared/API.md is not beside the repository")
def test_every_promised_name_exists():
    lines = _code()
    aliases = _aliases(lines)
    assert {"tt", "F", "nn", "gpt", "bpe", "viz", "PLAIN"} <= set(aliases)
    used = {(alias, name) for line in lines
            for alias, name in re.findall(r"(?<![\w.])(\w+)\.([A-Za-z_]\w*)", line) if alias in aliases
            and alias != "np"}
    missing = sorted(f"{a}.{n}" for a, n in used if not hasattr(aliases[a], n))
    assert len(used) > 25 and not missing, missing


@pytest.mark.skipif(not API.is_file(), reason="../shared/API.md is not beside the repository")
def test_the_plain_rung_has_the_promised_example():
    from tinytensor.reference import PLAIN
    fwd, bwd = PLAIN["layer_norm"]
    assert callable(fwd) and callable(bwd)
