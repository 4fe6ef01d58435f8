"""Data: the default corpus, sliding windows, shuffled batches that resume, the split and the .npy cache."""
import numpy as np
import pytest

import bpe
from gpt.data import (BatchSampler, SlidingWindowDataset, default_corpus, encode_cached, eval_batches, read_text,
                      train_val_split)


def test_default_corpus_is_cpythons_english_help_text():
    text = default_corpus()
    assert len(text) > 300_000 and "for" in text and "<|endoftext|>" in text
    assert text == default_corpus()


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


def test_encode_cached_writes_and_reuses_an_npy(tmp_path):
    text = default_corpus()[:3000]
    tok = bpe.train(text, 300, special_tokens=("<|endoftext|>",))
    ids = encode_cached(text, tok, tmp_path)
    files = list(tmp_path.glob("tokens-*.npy"))
    assert len(files) == 1 and ids.dtype == np.int32
    assert tok.decode(ids.tolist()) == text
    files[0].write_bytes(b"")                                 # a damaged cache is rebuilt
    np.testing.assert_array_equal(encode_cached(text, tok, tmp_path), ids)
    np.testing.assert_array_equal(np.load(files[0]), ids)


def test_read_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text(bad)
    with pytest.raises(ValueError, match="folder"):
        read_text(tmp_path)
