"""Tokenizer files: round trips, atomic writes, and clear errors for damaged or foreign files."""
import os

import pytest

import bpe


def test_round_trip_trained(verdict_tok, tmp_path):
    path = tmp_path / "verdict.bpe"
    verdict_tok.save(path)
    loaded = bpe.Tokenizer.load(path)
    assert loaded.merges == verdict_tok.merges
    assert loaded.special_tokens == verdict_tok.special_tokens
    assert loaded.pattern == verdict_tok.pattern
    text = "It had always been <|endoftext|> rather a surprise"
    assert loaded.encode(text, allowed_special="all") == verdict_tok.encode(text, allowed_special="all")


def test_round_trip_gpt2_keeps_its_byte_ids(gpt2_tok, tmp_path):
    path = tmp_path / "gpt2.bpe"
    gpt2_tok.save(path)
    loaded = bpe.Tokenizer.load(str(path))
    assert loaded.byte_ids == gpt2_tok.byte_ids
    assert loaded.encode("Hello, I am") == [15496, 11, 314, 716]
    assert loaded.eot_id == 50256


def test_file_is_readable_text(tiny_tok, tmp_path):
    path = tmp_path / "tiny.bpe"
    tiny_tok.save(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "bpe-tokenizer 1"
    assert lines[1].startswith("pattern ")
    assert lines[2] == "bytes identity"
    assert lines[3:5] == ["specials 1", '"<|endoftext|>" 279']
    assert lines[5] == f"merges {len(tiny_tok.merges)}"
    assert len(lines) == 6 + len(tiny_tok.merges)


def test_save_replaces_atomically(tiny_tok, tmp_path):
    path = tmp_path / "tok.bpe"
    path.write_text("old")
    tiny_tok.save(path)
    assert os.listdir(tmp_path) == ["tok.bpe"]           # no temporary file left behind
    assert bpe.Tokenizer.load(path).merges == tiny_tok.merges
    (tmp_path / "plain").write_text("x")                  # the mode any new file gets here (umask applied)
    assert os.stat(path).st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777


def test_special_names_with_spaces_and_quotes(tmp_path):
    tok = bpe.train("hello world", 260, special_tokens=('<a b>', 'say "hi"\n'))
    tok.save(tmp_path / "t.bpe")
    assert bpe.Tokenizer.load(tmp_path / "t.bpe").special_tokens == tok.special_tokens


def _damaged(tiny_tok, tmp_path, edit):
    path = tmp_path / "t.bpe"
    tiny_tok.save(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(edit(lines)), encoding="utf-8")
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda l: l[:-10], "ends early"),
    (lambda l: ["gpt-tokenizer 1"] + l[1:], "not a bpe tokenizer file"),
    (lambda l: ["bpe-tokenizer 7"] + l[1:], "version '7' is not supported"),
    (lambda l: l[:1] + ["pattern not-json"] + l[2:], "line 2: expected the pattern"),
    (lambda l: l[:1] + ['pattern "("'] + l[2:], "invalid pattern"),
    (lambda l: l[:2] + ["bytes 1 2 3"] + l[3:], "line 3: expected 'bytes identity'"),
    (lambda l: l[:4] + ['"<|endoftext|>" x'] + l[5:], "line 5"),
    (lambda l: l[:5] + ["merges lots"] + l[6:], "line 6"),
    (lambda l: l[:6] + ["104 9999"] + l[7:], "merge 0"),
    (lambda l: l[:7] + ["104,101"] + l[8:], "line 8: expected two ids"),
    (lambda l: l[:-1] + ["1 2", "3 4", ""], "line .*: unexpected text"),
    (lambda l: l[:3] + ["specials 1", '"<|endoftext|>" 3']  + l[5:], "special"),
    (lambda l: l[:1] + ["pattern " + "[" * 100_000] + l[2:], "line 2: expected the pattern"),
    (lambda l: l[:3] + ["specials " + "9" * 5000] + l[4:], "line 4: expected 'specials <count>'"),
])
def test_damaged_file_errors_say_what_is_wrong(tiny_tok, tmp_path, edit, message):
    path = _damaged(tiny_tok, tmp_path, edit)
    with pytest.raises(ValueError, match=message) as info:
        bpe.Tokenizer.load(path)
    assert str(path) in str(info.value)


def test_foreign_files(tmp_path, shared_data):
    with pytest.raises(ValueError, match="not a bpe tokenizer file"):
        bpe.Tokenizer.load(shared_data / "gpt2" / "vocab.bpe")
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x80\x04\x95pickle\xff")
    with pytest.raises(ValueError, match="not UTF-8"):
        bpe.Tokenizer.load(binary)
    empty = tmp_path / "empty.bpe"
    empty.write_text("")
    with pytest.raises(ValueError, match="ends early"):
        bpe.Tokenizer.load(empty)
