"""``python -m bpe`` prints a warning as one line, as ``python -m gpt`` does (no UserWarning with a source echo)."""
from bpe.__main__ import main


def test_a_warning_is_one_line(tmp_path, capsys):
    text = tmp_path / "small.txt"
    text.write_text("hello hello world\n", encoding="utf-8")
    assert main(["train", "--input", str(text), "--vocab-size", "300", "--out", str(tmp_path / "t.bpe")]) == 0
    err = capsys.readouterr().err
    assert "warning: the text has no more pairs to merge after 10 merges; the vocabulary has 266 ids, not 300\n" in err
    assert "UserWarning" not in err and "train(" not in err, err
