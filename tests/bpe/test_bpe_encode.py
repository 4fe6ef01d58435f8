"""Encoding and decoding: round trips, the two merge algorithms, long chunks, special tokens."""
import random

import pytest
from hypothesis import given, strategies as st

import bpe
from bpe.merging import merge_heap, merge_simple


@given(st.text())
def test_round_trip_any_text(text):
    tok = bpe.train("the cat sat on the mat, the cat ate the rat. 1234 héé", 256 + 20)
    assert tok.decode(tok.encode(text)) == text


def test_round_trip_trained(verdict_tok, shared_data):
    text = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    ids = verdict_tok.encode(text)
    assert verdict_tok.decode(ids) == text
    assert len(ids) < len(text.encode()) / 2  # 512 ids compress English more than 2x


@given(st.lists(st.integers(0, 7), max_size=120))
def test_heap_merge_equals_simple_merge(ids):
    # a dense table over a tiny alphabet, with ranks that make long merge chains
    rng = random.Random(len(ids))
    pair_ids = {}
    next_id = 8
    for _ in range(30):
        pair = (rng.randrange(next_id), rng.randrange(next_id))
        if pair not in pair_ids:
            pair_ids[pair] = next_id
            next_id += 1
    assert merge_heap(ids, pair_ids) == merge_simple(ids, pair_ids)


def test_heap_merge_equals_simple_merge_on_gpt2(gpt2_tok):
    rng = random.Random(0)
    for _ in range(20):
        word = "".join(rng.choice("abcdefghij klmnop") for _ in range(rng.randint(50, 200)))
        ids = [gpt2_tok.byte_ids[b] for b in word.encode()]
        assert merge_heap(ids, gpt2_tok.pair_ids) == merge_simple(ids, gpt2_tok.pair_ids)


def test_one_long_chunk(gpt2_tok, verdict_tok):
    # a 100,000-character chunk goes through the heap merge (timed in benchmarks/, not here)
    rng = random.Random(1)
    letters = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(100_000))
    for tok in (gpt2_tok, verdict_tok):
        for text in ("z" * 100_000, letters):
            ids = tok.encode(text)
            assert tok.decode(ids) == text
            assert len(ids) <= len(text)
    assert len(gpt2_tok.encode("z" * 100_000)) < 100_000


def test_cache_gives_the_same_ids(tiny_tok):
    first = tiny_tok.encode("the cat the cat")
    again = tiny_tok.encode("the cat the cat")
    assert first == again
    again.append(0)  # mutating a result must not touch the cache
    assert tiny_tok.encode("the cat the cat") == first


def test_special_text_is_refused_by_default(tiny_tok):
    with pytest.raises(ValueError, match="<\\|endoftext\\|>"):
        tiny_tok.encode("hello <|endoftext|> world")


def test_special_tokens_allowed(verdict_tok):
    eot, pad = verdict_tok.special_tokens["<|endoftext|>"], verdict_tok.special_tokens["<|pad|>"]
    ids = verdict_tok.encode("a<|endoftext|>b<|pad|>", allowed_special="all")
    assert ids.count(eot) == 1 and ids[-1] == pad
    assert verdict_tok.decode(ids) == "a<|endoftext|>b<|pad|>"
    ids = verdict_tok.encode("a<|endoftext|>b", allowed_special={"<|endoftext|>"})
    assert eot in ids
    with pytest.raises(ValueError, match="pad"):
        verdict_tok.encode("a<|endoftext|>b<|pad|>", allowed_special={"<|endoftext|>"})
    with pytest.raises(ValueError, match="unknown special"):
        verdict_tok.encode("x", allowed_special={"<|nope|>"})


def test_special_text_as_ordinary_text(tiny_tok):
    text = "a <|endoftext|> b"
    ids = tiny_tok.encode(text, disallowed_special=())
    assert tiny_tok.eot_id not in ids
    assert ids == tiny_tok.encode_ordinary(text)
    assert tiny_tok.decode(ids) == text


def test_decode_turns_invalid_utf8_into_replacement_character(tiny_tok):
    # bytes 0xE2 0x82 alone are the start of a 3-byte character: not valid UTF-8
    assert tiny_tok.decode([0xE2, 0x82]) == "\ufffd"
    assert tiny_tok.decode([104, 0xFF, 105]) == "h\ufffdi"
    assert tiny_tok.decode_bytes([0xE2, 0x82]) == b"\xe2\x82"


def test_decode_never_raises_on_a_valid_id(tiny_tok):
    for i in range(tiny_tok.n_vocab):
        assert isinstance(tiny_tok.decode([i]), str)


def test_decode_unknown_id(tiny_tok):
    for bad in (tiny_tok.n_vocab, -1, 10**9):
        with pytest.raises(ValueError, match=f"unknown token id {bad}"):
            tiny_tok.decode([1, bad])
    with pytest.raises(ValueError, match="not an integer"):
        tiny_tok.decode([1, "x"])


def test_decode_accepts_numpy_ints_and_generators(tiny_tok):
    np = pytest.importorskip("numpy")
    ids = tiny_tok.encode("the cat")
    assert tiny_tok.decode(np.array(ids)) == "the cat"
    assert tiny_tok.decode(i for i in ids) == "the cat"


def test_encode_needs_str(tiny_tok):
    with pytest.raises(TypeError, match="str"):
        tiny_tok.encode(b"bytes")


def test_gpt4_pattern_round_trip():
    text = "I'LL say 1234567 things\r\n\n  ok?!  "
    tok = bpe.train(text * 3, 256 + 10, pattern=bpe.GPT4_PATTERN)
    assert tok.decode(tok.encode(text)) == text
    import regex
    assert regex.findall(bpe.GPT4_PATTERN, "1234567") == ["123", "456", "7"]


def test_invalid_merges_rejected():
    with pytest.raises(ValueError, match="expected 256"):
        bpe.Tokenizer(bpe.GPT2_PATTERN, [((1, 2), 300)])
    with pytest.raises(ValueError, match="not defined"):
        bpe.Tokenizer(bpe.GPT2_PATTERN, [((1, 256), 256)])
    with pytest.raises(ValueError, match="repeats"):
        bpe.Tokenizer(bpe.GPT2_PATTERN, [((1, 2), 256), ((1, 2), 257)])
    with pytest.raises(ValueError, match="special"):
        bpe.Tokenizer(bpe.GPT2_PATTERN, [((1, 2), 256)], {"<s>": 256})
    with pytest.raises(ValueError, match="pattern"):
        bpe.Tokenizer("(", [])


def test_lone_surrogate_becomes_replacement_character(tiny_tok):
    assert tiny_tok.decode(tiny_tok.encode("a\ud800b")) == "a\ufffdb"
