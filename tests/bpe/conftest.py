"""Fixtures for the tokenizer tests: GPT-2's tokenizer and a small trained one, built once each."""
import functools

import pytest

import bpe


@functools.lru_cache(maxsize=None)
def _gpt2(folder):
    return bpe.gpt2(folder / "gpt2" / "encoder.json", folder / "gpt2" / "vocab.bpe")


@functools.lru_cache(maxsize=None)
def _verdict_tokenizer(folder):
    text = (folder / "the-verdict.txt").read_text(encoding="utf-8")
    return bpe.train(text, vocab_size=512, special_tokens=("<|endoftext|>", "<|pad|>"))


@pytest.fixture
def gpt2_tok(shared_data):
    """GPT-2's tokenizer from ../shared/data/gpt2 (skips when the data is absent)."""
    return _gpt2(shared_data)


@pytest.fixture
def verdict_tok(shared_data):
    """A 512-id tokenizer trained on The Verdict, with two special tokens."""
    return _verdict_tokenizer(shared_data)


@functools.lru_cache(maxsize=None)
def _tiny_tokenizer():
    text = "the cat sat on the mat; the dog ate the hat. " * 20 + "aaa bbb aaaa 12345 héllo wörld"
    return bpe.train(text, vocab_size=280, special_tokens=("<|endoftext|>",))


@pytest.fixture
def tiny_tok():
    """A 280-id tokenizer trained on a sentence of a few words (needs no data files)."""
    return _tiny_tokenizer()
