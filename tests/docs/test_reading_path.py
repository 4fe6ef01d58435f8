"""The reading path (docs/reading-path.md and the README's section) names files that exist, PLAIN entries
that exist, and every chapter from 2 to 7."""
import re
from pathlib import Path

import pytest

from tinytensor.reference import PLAIN

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reading-path.md"


def _section(text):
    return text.split("## Reading path", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("where", ["docs", "README"])
def test_every_file_and_plain_rung_named_exists(where):
    text = DOC.read_text(encoding="utf-8") if where == "docs" else _section((ROOT / "README.md").read_text("utf-8"))
    paths = set(re.findall(r"`((?:tinytensor|gpt|bpe|examples|docs)/[\w./]*)`", text))
    assert len(paths) > 10, paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == [], missing
    names = set(re.findall(r'PLAIN\["(\w+)"\]', text))
    assert names and names <= set(PLAIN), names - set(PLAIN)


def test_every_chapter_from_2_to_7_is_there():
    headings = re.findall(r"^## Chapter (\d)", DOC.read_text(encoding="utf-8"), re.M)
    assert headings == ["2", "3", "4", "5", "6", "7"]
    for n in range(2, 8):
        assert re.search(rf"^\| {n} ", _section((ROOT / "README.md").read_text("utf-8")), re.M), n
