"""Training: the counting and tie rules, the two trainers agreeing, specials, bad input."""
import warnings

import pytest
from hypothesis import given, strategies as st

import bpe
from bpe.train import count_chunks, learn_merges, learn_merges_naive, merge_pair


def test_worked_example_classic_string():
    # "aaabdaaabac" as one chunk: (a, a) occurs 4 times and merges first -> [aa a b d aa a b a c];
    # then (aa, a) and (a, b) both occur twice: the tie goes to (a, b) = (97, 98) < (256, 97);
    # then (aa, ab) twice -> [aaab d aaab a c].
    merges = learn_merges({"aaabdaaabac": 1}, 3)
    assert merges == [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    assert learn_merges_naive({"aaabdaaabac": 1}, 3) == merges
    tok = bpe.Tokenizer(r"[a-z]+|[^a-z]+", merges)        # a pattern must cover every character
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_pairs_counted_at_every_position_and_merged_without_overlap():
    # "aaa" holds (a, a) twice, so (a, a) with count 2 beats (b, c) with count 1 ... and merging
    # it gives "aa", "a" (left to right, no overlap).
    merges = learn_merges({"aaa": 1, "bc": 1}, 1)
    assert merges == [((97, 97), 256)]
    assert merge_pair([97, 97, 97], (97, 97), 256) == [256, 97]
    assert merge_pair([97, 97, 97, 97], (97, 97), 256) == [256, 256]


def test_tie_goes_to_smallest_pair():
    # (c, d) and (a, b) both occur 3 times: (a, b) = (97, 98) is smaller and goes first.
    assert learn_merges({"cd": 3, "ab": 3}, 1) == [((97, 98), 256)]
    assert learn_merges_naive({"cd": 3, "ab": 3}, 1) == [((97, 98), 256)]
    # left id decides before right id
    assert learn_merges({"bz": 2, "ca": 2, "by": 2}, 1) == [((98, 121), 256)]


def test_chunk_counts_weight_pairs():
    # " the" five times outweighs "xyzxyz" once even though xyz repeats inside it
    merges = learn_merges({" the": 5, "xyzxyz": 1}, 1)
    assert merges[0][0] in {(32, 116), (116, 104), (104, 101)}
    assert merges[0][0] == (32, 116)  # all three have count 5: smallest wins


def test_merges_never_cross_chunk_boundaries():
    tok = bpe.train("ab ab ab ab", vocab_size=256 + 2)
    for (left, right), new in tok.merges:
        assert b" " not in tok.token_bytes(new)[1:]  # a space only ever starts a token


CORPORA = [
    "aaaa bbbb aaaa abab baba " * 5,
    "the quick brown fox jumps over the lazy dog. " * 4 + "THE QUICK 123 456 7890!!",
    "ééé ñañaña 日本日本日本 😀😀 " * 3,
    "\n\n  \t x  y\n" * 7 + "zzzzzzzzzzzzzzzzzzzzz",
    "abcabcabcabc",
]


@pytest.mark.parametrize("text", CORPORA)
def test_trainers_agree_on_fixed_corpora(text):
    chunks = count_chunks(text)
    assert learn_merges(chunks, 60) == learn_merges_naive(chunks, 60)


def test_trainers_agree_on_the_verdict(shared_data):
    text = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    chunks = count_chunks(text)
    assert learn_merges(chunks, 200) == learn_merges_naive(chunks, 200)


def test_trainers_agree_on_tinyshakespeare_slice(shared_data):
    text = (shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")[:30_000]
    chunks = count_chunks(text, bpe.GPT4_PATTERN)
    assert learn_merges(chunks, 150) == learn_merges_naive(chunks, 150)


@given(st.text(alphabet="ab c\n", max_size=80), st.integers(1, 40))
def test_trainers_agree_on_random_small_alphabet_text(text, n_merges):
    # tiny alphabets make ties on almost every step
    chunks = count_chunks(text)
    assert learn_merges(chunks, n_merges) == learn_merges_naive(chunks, n_merges)


@given(st.dictionaries(st.text(alphabet="xyz", min_size=1, max_size=8), st.integers(1, 5), max_size=6))
def test_trainers_agree_on_weighted_chunks(chunks):
    assert learn_merges(chunks, 25) == learn_merges_naive(chunks, 25)


def test_train_naive_option_gives_same_tokenizer():
    text = CORPORA[1]
    a = bpe.train(text, 300, special_tokens=("<|endoftext|>",))
    b = bpe.train(text, 300, special_tokens=("<|endoftext|>",), algorithm="naive")
    assert a.merges == b.merges and a.special_tokens == b.special_tokens


def test_encoding_the_training_text_replays_training():
    # every chunk of the training text encodes to what training left it as: each merge applies
    text = "low lower lowest newer wider " * 10
    tok = bpe.train(text, 256 + 12)
    words = {c: list(c.encode()) for c in count_chunks(text)}
    for pair, new in tok.merges:
        words = {c: merge_pair(w, pair, new) for c, w in words.items()}
    for chunk, ids in words.items():
        assert tok.encode(chunk) == ids


def test_special_tokens_come_after_the_merges(tiny_tok):
    assert len(tiny_tok.merges) == 280 - 256 - 1
    assert tiny_tok.special_tokens == {"<|endoftext|>": 279}
    assert tiny_tok.eot_id == 279
    assert tiny_tok.n_vocab == 280
    assert [new for _, new in tiny_tok.merges] == list(range(256, 279))


def test_special_token_text_is_not_learned():
    text = "<|endoftext|>".join(["hello world"] * 50)
    tok = bpe.train(text, 256 + 9 + 1, special_tokens=("<|endoftext|>",))
    learned = {tok.token_bytes(new) for _, new in tok.merges}
    assert not any(b"<|" in t or b"|>" in t for t in learned)


def test_training_on_a_list_of_documents():
    tok = bpe.train(["hello there", "hello world"], 256 + 5)
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_vocab_size_too_small():
    with pytest.raises(ValueError, match="too small"):
        bpe.train("hello", 256, special_tokens=("<|endoftext|>",))
    with pytest.raises(ValueError, match="too small"):
        bpe.train("hello", 100)
    with pytest.raises(TypeError):
        bpe.train("hello", 300.0)


def test_empty_corpus():
    with pytest.raises(ValueError, match="empty corpus"):
        bpe.train("", 300)
    with pytest.raises(ValueError, match="empty corpus"):
        bpe.train("<|endoftext|>", 300, special_tokens=("<|endoftext|>",))


def test_bad_special_tokens_and_algorithm():
    with pytest.raises(ValueError, match="repeat"):
        bpe.train("hello", 300, special_tokens=("<a>", "<a>"))
    with pytest.raises(ValueError, match="non-empty"):
        bpe.train("hello", 300, special_tokens=("",))
    with pytest.raises(ValueError, match="algorithm"):
        bpe.train("hello", 300, algorithm="fast")


def test_running_out_of_pairs_stops_with_a_warning():
    with pytest.warns(UserWarning, match="no more pairs"):
        tok = bpe.train("ab", 300)
    assert tok.merges == [((97, 98), 256)]
    assert tok.n_vocab == 257


def test_progress_is_reported():
    calls = []
    bpe.train("abcd abcd abce", 256 + 4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_progress_printer_is_quiet_for_short_runs_and_talks_for_long_ones():
    import io
    from bpe.train import Progress
    out = io.StringIO()
    p = Progress(out, after=1.0)
    p(1, 10)
    p(10, 10)
    assert out.getvalue() == ""
    out = io.StringIO()
    p = Progress(out, after=0.0, every=0.0)
    p(1, 2)
    p(2, 2)
    assert "1/2 merges" in out.getvalue() and out.getvalue().endswith("\n")


def test_progress_printer_writes_whole_lines_to_a_pipe_and_redraws_on_a_terminal():
    import io
    from bpe.train import Progress
    for tty, sep in ((False, "\n"), (True, "\r")):
        out = io.StringIO()
        p = Progress(out, after=0.0, every=0.0, every_piped=0.0, tty=tty)
        p(1, 3)
        p(2, 3)
        p(3, 3)
        assert out.getvalue().count(sep) == (3 if sep == "\n" else 2), (tty, out.getvalue())
        assert ("\r" in out.getvalue()) == tty and out.getvalue().endswith("\n")


def test_no_warning_when_vocab_is_reached():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bpe.train("hello hello world", 260)
