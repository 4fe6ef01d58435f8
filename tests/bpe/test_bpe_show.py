"""Learner tools: merge-by-merge steps, visible token boundaries, bytes per token."""
import bpe
from bpe.show import bytes_per_token, format_steps, merge_steps, show_tokens, token_text


def test_steps_end_at_the_encoding(verdict_tok):
    text = "Jack Gisburn rather a cheap genius"
    ids = []
    for chunk, states in merge_steps(verdict_tok, text):
        assert b"".join(states[0]) == chunk.encode()
        assert all(len(s) == 1 for s in states[0])                   # starts from bytes
        assert [len(s) for s in states] == list(range(len(states[0]), len(states[0]) - len(states), -1))
        assert all(b"".join(s) == chunk.encode() for s in states)
        ids += verdict_tok.encode(chunk)
        assert [verdict_tok.token_bytes(i) for i in verdict_tok.encode(chunk)] == states[-1]
    assert ids == verdict_tok.encode(text)


def test_format_steps_shows_each_merge(tiny_tok):
    lines = format_steps(tiny_tok, "the").splitlines()
    assert lines[0].startswith("chunk 'the'")
    assert lines[1] == "  t|h|e" and lines[-1] == "  the"


def test_format_steps_marks_a_space_visibly(tiny_tok):
    lines = format_steps(tiny_tok, " the").splitlines()
    assert "\u2423 is a space" in lines[0]
    assert lines[1] == "  \u2423|t|h|e" and lines[-1].startswith("  \u2423")


def test_show_tokens(tiny_tok):
    plain = show_tokens(tiny_tok, "the cat sat", color=False)
    assert plain.replace("|", "") == "the cat sat" and plain.count("|") >= 2
    colored = show_tokens(tiny_tok, "the cat", color=True)
    assert "\x1b[" in colored


def test_token_text_escapes_control_and_broken_bytes():
    assert token_text(b"a\nb") == "a\\nb"
    assert token_text(b"\xe2\x82") == "\\xe2\\x82"


def test_bytes_per_token(tiny_tok):
    text = "the cat sat on the mat"
    assert bytes_per_token(tiny_tok, text) == len(text) / len(tiny_tok.encode(text))
    assert bytes_per_token(tiny_tok, "") == 0.0
    assert bpe.Tokenizer(bpe.GPT2_PATTERN, []).encode("abc") == [97, 98, 99]
