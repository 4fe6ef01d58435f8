"""Tokenizer fuzzing: for any Unicode text, ``decode(encode(t)) == t``, and encoding never crashes.

Lone surrogates (which ``str`` allows but UTF-8 cannot hold) are encoded the way tiktoken does it: the
text goes through UTF-16 with ``surrogatepass`` and back with ``replace``, so a lone surrogate becomes
U+FFFD and a high+low pair that Python kept as two code points becomes the character they spell.
"""
import functools

import pydoc_data.topics
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpe

EOT = "<|endoftext|>"

# any code point but surrogates (hypothesis's default), plus the whitespace and punctuation that steer the
# pre-tokenizing regex (contractions, runs of spaces, CR/LF, digits, non-ASCII spaces)
tricky = st.sampled_from(list(" \t\n\r\x0b\x0c\x85\u00a0\u2028\u3000's'T'll'VE123456789é中😀\u0301"))
texts = st.one_of(
    st.text(st.one_of(st.characters(codec="utf-8"), tricky), max_size=60),      # "utf-8": no surrogates
    st.text(st.sampled_from("aAbBsStT  '\n1é😀"), max_size=40),                 # repeated, case-varied words
)
lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
texts_with_surrogates = st.lists(st.one_of(st.characters(), tricky, lone_surrogates), max_size=40).map("".join)


def tiktoken_fixup(text):
    """What tiktoken (and bpe) encode for a str holding surrogates: lone ones become U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@functools.lru_cache(maxsize=None)
def trained(pattern_name):
    """A 600-id tokenizer trained on ~8 KB of CPython's help text, once per pattern."""
    topics = pydoc_data.topics.topics
    text = "".join(topics[k] for k in sorted(topics))[:8000]
    pattern = {"gpt2": bpe.GPT2_PATTERN, "gpt4": bpe.GPT4_PATTERN}[pattern_name]
    return bpe.train(text, vocab_size=600, pattern=pattern, special_tokens=(EOT,))


@functools.lru_cache(maxsize=None)
def gpt2_tokenizer(folder):
    return bpe.gpt2(folder / "gpt2" / "encoder.json", folder / "gpt2" / "vocab.bpe")


@pytest.fixture(params=["gpt2", "gpt4"])
def tok(request):
    return trained(request.param)


@pytest.fixture
def gpt2_tok(shared_data):
    return gpt2_tokenizer(shared_data)


# the fixtures return the same cached tokenizer for every example, so sharing them across examples is safe
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_the_trained_tokenizer_has_merges():
    assert len(trained("gpt2").merges) > 300 and trained("gpt2").special_tokens == {EOT: 599}


@fixture_ok
@given(texts)
def test_trained_round_trip(tok, text):
    ids = tok.encode(text, disallowed_special=())      # (Hypothesis may draw "<|endoftext|>" from the source)
    assert all(isinstance(i, int) and 0 <= i < tok.n_vocab for i in ids)
    assert tok.decode(ids) == text


@fixture_ok
@given(texts)
def test_gpt2_round_trip(gpt2_tok, text):
    assert gpt2_tok.decode(gpt2_tok.encode(text, disallowed_special=())) == text


@fixture_ok
@given(texts_with_surrogates)
def test_trained_surrogates_become_replacement_chars(tok, text):
    ids = tok.encode(text)                              # never raises
    assert tok.decode(ids) == tiktoken_fixup(text)


@fixture_ok
@given(texts_with_surrogates)
def test_gpt2_surrogates_become_replacement_chars(gpt2_tok, text):
    assert gpt2_tok.decode(gpt2_tok.encode(text)) == tiktoken_fixup(text)


def test_surrogate_examples(tok):
    assert tok.decode(tok.encode("a\udc80b")) == "a\ufffdb"
    assert tok.decode(tok.encode("\ud800")) == "\ufffd"
    assert tok.decode(tok.encode("\ud83d\ude00!")) == "\U0001f600!"    # a split pair joins, as in tiktoken


@fixture_ok
@given(texts, texts)
def test_special_token_text_is_refused_unless_allowed(tok, before, after):
    text = before + EOT + after
    with pytest.raises(ValueError, match="special token"):
        tok.encode(text)
    ids = tok.encode(text, allowed_special="all")
    assert tok.special_tokens[EOT] in ids
    assert tok.decode(ids) == text
    plain = tok.encode(text, disallowed_special=())     # as ordinary text: no special id
    assert tok.special_tokens[EOT] not in plain and tok.decode(plain) == text


@fixture_ok
@given(st.lists(st.integers(0, 599), max_size=30))
def test_decoding_any_known_ids_gives_text(tok, ids):
    assert isinstance(tok.decode(ids), str)             # invalid UTF-8 becomes U+FFFD, never an error


@fixture_ok
@given(st.lists(st.integers(0, 599), max_size=10), st.integers(600, 10**6))
def test_decoding_an_unknown_id_is_a_value_error(tok, ids, bad):
    with pytest.raises(ValueError, match=f"unknown token id {bad}"):
        tok.decode(ids + [bad])


@fixture_ok
@given(st.one_of(st.binary(max_size=20), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=3)))
def test_encoding_a_non_string_is_a_type_error(tok, value):
    with pytest.raises(TypeError, match="encode expects str"):
        tok.encode(value)
