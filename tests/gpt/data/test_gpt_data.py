"""Data: the default corpus, sliding windows, shuffled batches that resume, the split and the .npy cache."""
import os
from pathlib import Path

import numpy as np
import pytest

import bpe
import tinytensor as tt
from gpt.__main__ import main as gpt_main
from gpt.data.corpus import help_text
from gpt.data import (BatchSampler, SlidingWindowDataset, default_corpus, encode_cached, eval_batches, read_text,
                      train_val_split)


def test_default_corpus_is_cpythons_english_help_text_and_docstrings(cache_folder):
    """The help topics and the stdlib's docstrings, built once (in this session's cache folder, which
    the README's test then reuses) and read from the cache after that."""
    text = default_corpus()
    assert len(text) > 1_500_000 and text.count("<|endoftext|>") > 500
    assert "The \"for\" statement" in text                                   # a help topic
    assert "Serialize ``obj`` to a JSON formatted ``str``" in text            # json.dumps's docstring
    (cached,) = (Path(cache_folder) / "corpus").iterdir()
    assert cached.read_text(encoding="utf-8") == text == default_corpus()


def test_a_damaged_corpus_cache_is_noticed_and_built_again(tmp_path, monkeypatch):
    from gpt.data import cache, corpus
    monkeypatch.setenv(cache.ENV, str(tmp_path))
    few = [s for s in corpus.stdlib_sources() if s[0].startswith("json/")]
    monkeypatch.setattr(corpus, "stdlib_sources", lambda: few)
    text = corpus.default_corpus()
    (cached,) = (tmp_path / "corpus").iterdir()
    cached.write_text(text.replace("statement", "statemenT", 1), encoding="utf-8")   # damaged: same name
    assert corpus.default_corpus() == text
    (cached,) = (tmp_path / "corpus").iterdir()
    assert cached.read_text(encoding="utf-8") == text


def test_the_corpus_order_is_fixed_and_mixes_its_sources(tmp_path):
    """Documents sorted by name, then shuffled with a fixed seed: the same text each time, and the last
    tenth (the validation share) holds both help topics and docstrings."""
    from gpt.data import corpus
    sources = [s for s in corpus.stdlib_sources() if s[0].startswith(("json/", "textwrap"))]
    a, b = corpus.build(sources), corpus.build(sources)
    assert a == b and a != corpus.build(sources, seed=1)
    tail = a[int(len(a) * 0.9):]
    assert "Serialize ``obj``" in a and any(t[:200] in tail for _, t in corpus.help_topics())
    assert corpus.docstrings('"""Mod."""\nclass A:\n    """Cls."""\n    def f(self):\n        """Fn."""\n') == \
        ["Mod.", "Cls.", "Fn."]


def test_sliding_windows_shift_targets_by_one():
    ids = np.arange(20)
    ds = SlidingWindowDataset(ids, max_length=4, stride=3)
    assert len(ds) == 6            # starts 0, 3, 6, 9, 12, 15 (15 + 4 + 1 = 20 tokens)
    x, y = ds[5]
    np.testing.assert_array_equal(x, [15, 16, 17, 18])
    np.testing.assert_array_equal(y, [16, 17, 18, 19])
    bx, by = ds.batch([0, 2])
    np.testing.assert_array_equal(bx, [[0, 1, 2, 3], [6, 7, 8, 9]])
    np.testing.assert_array_equal(by, bx + 1)
    assert len(SlidingWindowDataset(np.arange(4), 4)) == 0
    assert len(SlidingWindowDataset(np.arange(5), 4)) == 1
    with pytest.raises(IndexError):
        ds[6]


def test_sampler_shuffles_per_epoch_drops_the_ragged_batch_and_resumes():
    ds = SlidingWindowDataset(np.arange(200), 4)         # 49 windows
    s = BatchSampler(ds, batch_size=8, seed=3)
    assert s.batches_per_epoch == 6
    first = [s.next_batch()[0] for _ in range(6)]
    starts = np.concatenate([b[:, 0] for b in first]) // 4
    assert len(set(starts)) == 48 and not np.array_equal(starts, np.sort(starts))
    second = s.next_batch()[0]
    assert s.epoch == 1 and s.position == 1
    state = s.state_dict()
    rest = [s.next_batch()[0] for _ in range(9)]
    t = BatchSampler(ds, batch_size=8, seed=3)
    t.load_state_dict(state)
    for a in rest:
        np.testing.assert_array_equal(a, t.next_batch()[0])
    assert not np.array_equal(second[:, 0], first[0][:, 0])
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchSampler(ds, batch_size=50)


def test_split_and_eval_batches():
    tr, va = train_val_split(np.arange(100), 0.1)
    assert len(tr) == 90 and len(va) == 10 and va[0] == 90
    ds = SlidingWindowDataset(np.arange(50), 4)
    batches = list(eval_batches(ds, 5))
    assert [len(b[0]) for b in batches] == [5, 5, 2]
    assert len(list(eval_batches(ds, 5, max_batches=2))) == 2


def test_encode_cached_writes_and_reuses_an_npy(tmp_path, monkeypatch):
    text = help_text()[:3000]
    tok = bpe.train(text, 300, special_tokens=("<|endoftext|>",))
    ids = encode_cached(text, tok, tmp_path)
    files = list(tmp_path.glob("tokens-*.npy"))
    assert len(files) == 1 and ids.dtype == np.int32
    assert tok.decode(ids.tolist()) == text
    files[0].write_bytes(b"")                                 # a damaged cache is rebuilt
    np.testing.assert_array_equal(encode_cached(text, tok, tmp_path), ids)
    np.testing.assert_array_equal(np.load(files[0]), ids)
    from gpt.data import cache  # by default in the cache folder's "tokens"
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    np.testing.assert_array_equal(encode_cached(text, tok), ids)
    assert [p.name for p in (tmp_path / "cache" / "tokens").iterdir()] == [files[0].name]
    (tmp_path / "ro").mkdir()                                 # a cache that cannot be written costs only time
    (tmp_path / "ro" / "tokens").write_text("not a folder")
    monkeypatch.setenv(cache.ENV, str(tmp_path / "ro"))
    np.testing.assert_array_equal(encode_cached(text, tok), ids)


def test_read_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text(bad)
    with pytest.raises(ValueError, match="folder"):
        read_text(tmp_path)


# ----- inputs that are not plain files, caches and tokenizers that changed (issue 15, items 12 and low) -----


TINY = ["--vocab-size", "260", "--context-length", "16", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2",
        "--batch-size", "2", "--eval-batches", "1", "--sample-tokens", "2", "--eval-every", "1000"]


def _run(capsys, *args):
    capsys.readouterr()
    rc = gpt_main([str(a) for a in args])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_read_text_refuses_what_is_not_a_regular_file(tmp_path, capsys, kind):
    path = kind
    if kind == "fifo":
        path = tmp_path / "pipe.txt"
        os.mkfifo(path)                                   # reading would wait forever for a writer
    with pytest.raises(ValueError, match="not a regular file"):
        read_text(path)
    rc, err = _run(capsys, "train", "--data", path, "--out", tmp_path / "out", *TINY)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(path) in err and not (tmp_path / "out").exists()


def test_read_text_caps_the_size(tmp_path, monkeypatch):
    from gpt import files
    path = tmp_path / "big.txt"
    path.write_text("x" * 1000, encoding="utf-8")
    monkeypatch.setattr(files, "MAX_TEXT", 999)
    with pytest.raises(ValueError, match="1,000 bytes, more than 999"):
        read_text(path)


@pytest.fixture
def text_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "small.txt").write_text(help_text()[:3000], encoding="utf-8")
    return tmp_path


def test_a_relative_data_path_resumes_from_any_folder_and_by_any_name(text_file, capsys, monkeypatch):
    out = text_file / "run"
    monkeypatch.chdir(text_file / "a")
    assert _run(capsys, "train", "--data", "small.txt", "--out", out, *TINY, "--max-steps", 1)[0] == 0
    monkeypatch.chdir(text_file / "b")                   # elsewhere, no --data: the stored path is absolute
    rc, err = _run(capsys, "train", "--out", out, "--resume", "--max-steps", 2)
    assert rc == 0, err
    os.symlink(text_file / "a" / "small.txt", text_file / "b" / "same.txt")
    rc, err = _run(capsys, "train", "--data", "same.txt", "--out", out, "--resume", "--max-steps", 3)
    assert rc == 0, err                                  # the same text by another name: compared by its digest


def test_a_shuffled_token_cache_is_noticed_and_the_resume_stays_exact(text_file, capsys, monkeypatch):
    from gpt.data import cache as cache_folder
    monkeypatch.setenv(cache_folder.ENV, str(text_file / "cache"))
    data = text_file / "a" / "small.txt"
    for name in ("clean", "shuffled"):
        assert _run(capsys, "train", "--data", data, "--out", text_file / name, *TINY, "--max-steps", 2)[0] == 0
    assert not list((text_file / "clean").glob("tokens-*"))           # the ids are cached in the cache folder
    (cache,) = (text_file / "cache" / "tokens").glob("tokens-*.npy")
    ids = np.load(cache)
    np.save(cache, np.random.default_rng(0).permutation(ids))          # same name, other data
    for name in ("clean", "shuffled"):
        rc, err = _run(capsys, "train", "--out", text_file / name, "--resume", "--max-steps", 4)
        assert rc == 0, err
    a, b = (tt.load(text_file / name / "model.safetensors") for name in ("clean", "shuffled"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_changed_tokenizer_is_refused_on_resume(text_file, capsys):
    out = text_file / "run"
    data = text_file / "a" / "small.txt"
    assert _run(capsys, "train", "--data", data, "--out", out, *TINY, "--max-steps", 1)[0] == 0
    bpe.train(help_text()[3000:9000], 260, special_tokens=("<|endoftext|>",)).save(out / "tokenizer.bpe")
    rc, err = _run(capsys, "train", "--out", out, "--resume", "--max-steps", 2)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "tokenizer" in err, err


def test_prose_is_unwrapped_and_code_lists_and_headings_keep_their_lines():
    """The sources break prose at about 70 columns; a small model fed those breaks learns mostly to emit
    line breaks, so paragraphs of prose become one line each."""
    from gpt.data.corpus import unwrap
    text = "A line\nwrapped here.\n\n  code\n  more\n\n* item\n* two\n\nTitle\n=====\n\n>>> x\n1\n\n1. first\n2. second"
    assert unwrap(text) == ("A line wrapped here.\n\n  code\n  more\n\n* item\n* two\n\nTitle\n=====\n\n>>> x\n1\n\n"
                            "1. first\n2. second")


def test_data_loader_gives_every_window_once_per_pass_in_a_new_order_each_pass():
    from gpt.data import DataLoader
    ids = np.arange(41)
    ds = SlidingWindowDataset(ids, 4)                           # 10 windows
    loader = DataLoader(ds, 3, shuffle=True, drop_last=True, seed=5)
    first, second = list(loader), list(loader)
    assert len(loader) == 3 and [len(x) for x, _ in first] == [3, 3, 3]
    starts = [int(row[0]) for x, _ in first for row in x]
    assert len(set(starts)) == 9 and set(starts) <= set(range(0, 40, 4))      # each window at most once
    assert starts != [int(row[0]) for x, _ in second for row in x]           # a new order each pass
    for x, y in first:
        np.testing.assert_array_equal(y, x + 1)                              # targets: the inputs shifted by one
    plain = DataLoader(ds, 3)                                               # in order, the short batch kept
    assert len(plain) == 4 and [len(x) for x, _ in plain] == [3, 3, 3, 1]
    assert [int(x[0, 0]) for x, _ in plain] == [0, 12, 24, 36]
    with pytest.raises(ValueError, match="batch_size must be positive"):
        DataLoader(ds, 0)
