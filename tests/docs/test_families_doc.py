"""docs/families.md: its Python blocks run, in order, and say what the text says they say."""
import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "families.md"


def test_the_learners_page_runs_and_prints_what_it_claims():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    out = io.StringIO()
    scope = {}
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), scope)
    lines = out.getvalue().splitlines()
    assert [l.split()[0] for l in lines[:3]] == ["GPT", "Llama", "Qwen3"]
    assert "True" in lines[3]                                    # RoPE: only the distance counts
    assert "(1, 2, 128, 32)" in out.getvalue()                   # the cache holds the 2 kv heads
    assert lines[-1].startswith("True")                          # Qwen3's q/k norm
