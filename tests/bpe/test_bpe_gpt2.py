"""GPT-2's published files give tiktoken's "gpt2" ids exactly."""
import json

import pytest
import regex

import bpe
from bpe.gpt2_files import bytes_to_unicode


def test_reference_file_matches_405_of_405(gpt2_tok, shared_data):
    lines = (shared_data / "gpt2_reference.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 405
    wrong = []
    for line in lines:
        case = json.loads(line)
        ids = gpt2_tok.encode(case["text"], allowed_special="all")
        if ids != case["ids"] or gpt2_tok.decode(ids) != case["text"]:
            wrong.append(case["text"][:60])
    assert wrong == []


def test_known_ids(gpt2_tok):
    assert gpt2_tok.encode("Hello, I am") == [15496, 11, 314, 716]
    assert gpt2_tok.n_vocab == 50257
    assert gpt2_tok.eot_id == 50256
    assert gpt2_tok.encode("<|endoftext|>", allowed_special="all") == [50256]


def test_token_counts_of_the_corpora(gpt2_tok, shared_data):
    verdict = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    shakespeare = (shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")
    assert len(gpt2_tok.encode(verdict)) == 5145
    ids = gpt2_tok.encode(shakespeare)
    assert len(ids) == 338_025
    assert gpt2_tok.decode(ids) == shakespeare


def test_bytes_to_unicode_is_gpt2s_table():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    assert all(c.isprintable() and not c.isspace() for c in table.values())


def test_every_vocabulary_token_encodes_to_itself(gpt2_tok):
    # a token's own text, as a lone chunk, comes back as that one token
    for i in range(0, 50256, 7):
        data = gpt2_tok.token_bytes(i)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if regex.fullmatch(bpe.GPT2_PATTERN, text):
            assert gpt2_tok.encode(text) == [i], text


def test_gpt2_accepts_a_folder(shared_data, gpt2_tok):
    assert bpe.gpt2(shared_data / "gpt2").merges == gpt2_tok.merges


def test_wrong_files_are_named(shared_data, tmp_path):
    enc, merges = shared_data / "gpt2" / "encoder.json", shared_data / "gpt2" / "vocab.bpe"
    with pytest.raises(ValueError, match="vocab.bpe"):
        bpe.gpt2(merges, enc)                      # swapped
    broken = tmp_path / "vocab.bpe"
    broken.write_text("#version: 0.2\nĠ t\nzzzq qqqz\n", encoding="utf-8")
    with pytest.raises(ValueError, match="merge 1"):
        bpe.gpt2(enc, broken)
    latin = tmp_path / "encoder.json"
    latin.write_bytes(b'{"\xff": 1}')
    with pytest.raises(ValueError, match="encoder.json"):
        bpe.gpt2(latin, merges)


def test_download_gpt2_is_documented():
    assert "sha-256" in bpe.download_gpt2.__doc__.lower()
