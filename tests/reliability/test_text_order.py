"""Chunks tile the text in order: a pattern that matches backwards is refused by every way in (issue 26, 1).

The coverage check once compared total length only, so `(?r)` (match from the end) passed and "the cat
sat" came back reversed word by word, or twice over through tokenizer.json's Isolated split.
"""
import json

import pytest

import bpe

BACKWARDS = r"(?r)\S+|\s+"
TEXT = "the cat sat on the mat"


def test_train_refuses_a_backwards_pattern():
    with pytest.raises(ValueError, match="backwards"):
        bpe.train(TEXT * 20, vocab_size=260, pattern=BACKWARDS)


def test_tokenizer_refuses_a_backwards_pattern():
    with pytest.raises(ValueError, match="backwards"):
        bpe.Tokenizer(BACKWARDS, [])


def test_saved_file_with_a_backwards_pattern_is_refused(tmp_path):
    tok = bpe.train(TEXT * 20, vocab_size=260, pattern=r"\S+|\s+")
    path = tmp_path / "t.bpe"
    tok.save(path)
    text = path.read_text(encoding="utf-8")
    assert json.dumps(r"\S+|\s+") in text
    path.write_text(text.replace(json.dumps(r"\S+|\s+"), json.dumps(BACKWARDS)), encoding="utf-8")
    with pytest.raises(ValueError, match="backwards"):
        bpe.Tokenizer.load(path)


def test_from_tiktoken_refuses_a_backwards_pattern(tmp_path):
    import base64
    path = tmp_path / "tokenizer.model"
    path.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    with pytest.raises(ValueError, match="backwards"):
        bpe.from_tiktoken(path, pattern=BACKWARDS)


def test_from_hf_refuses_a_backwards_split(tmp_path):
    byte_chars = bpe.bytes_to_unicode()
    spec = {
        "model": {"type": "BPE", "vocab": {byte_chars[b]: b for b in range(256)}, "merges": []},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": BACKWARDS}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "decoder": {"type": "ByteLevel"},
    }
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="backwards"):
        bpe.from_hf(path)


def test_splitter_keeps_order_for_every_accepted_pattern():
    from bpe.patterns import Splitter
    for pattern in (bpe.GPT2_PATTERN, bpe.GPT4_PATTERN, bpe.LLAMA3_PATTERN, r"\S+|\s+"):
        for keep_gaps in (False, True):
            assert "".join(Splitter(pattern, keep_gaps=keep_gaps)(TEXT)) == TEXT
