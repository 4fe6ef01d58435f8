"""Fixtures for the gpt tests (helpers live in gpt_helpers.py)."""
import pytest


@pytest.fixture
def small_text(tmp_path):
    """About 20,000 characters of English (the start of the default corpus) in a file."""
    from gpt.data.corpus import help_text
    path = tmp_path / "small.txt"
    path.write_text(help_text()[:20000], encoding="utf-8")
    return path


