"""Text in, batches out: the default corpus, cached tokenisation, sliding windows and shuffled batches.

A language model learns to predict token t+1 from tokens 0..t. A window of ``max_length + 1`` tokens
gives an input (its first max_length tokens) and a target (the same shifted by one). Windows start
every ``stride`` tokens: stride = max_length tiles the text without overlap, a smaller stride overlaps.
"""
import glob
import hashlib
import os

import numpy as np

from tinytensor.atomic import replacing

from . import cache, files

EOT = "<|endoftext|>"


def default_corpus():
    """The English text that ships with every CPython: its help topics and the standard library's
    docstrings, about 2.3 MB, joined with the end-of-text token (gpt/corpus.py; cached after the first run)."""
    from . import corpus
    return corpus.default_corpus()


def read_text(path):
    """A UTF-8 text file's contents; errors say what is wrong in one line. Only a regular file of at most
    ``files.MAX_TEXT`` bytes is read (not a FIFO or a device such as /dev/zero)."""
    path = os.fspath(path)
    text = files.read_text(path, files.MAX_TEXT, "a text to train on")
    if not text.strip():
        raise ValueError(f"{path} holds no text")
    return text


def text_digest(text):
    """A short SHA-256 of the text, to recognise the same corpus again."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def tokenizer_digest(tok):
    """A short SHA-256 of what decides a tokenizer's output: pattern, merges, specials, byte ids."""
    h = hashlib.sha256()
    h.update(tok.pattern.encode("utf-8"))
    h.update(repr(list(tok.merges)).encode())
    h.update(repr(sorted(tok.special_tokens.items())).encode())
    h.update(repr(list(getattr(tok, "byte_ids", range(256)))).encode())
    return h.hexdigest()[:16]


def save_npy(array, path):
    """np.save through a temporary name and a rename, so a reader never sees half a file."""
    with replacing(path, "wb") as f:
        np.save(f, array)


def ids_digest(ids):
    """A short SHA-256 of a token id array (as little-endian int32)."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i4").tobytes()).hexdigest()[:16]


def _cached_ids(path, n_vocab):
    """The ids in a cache file when they are whole and match the digest in its name, else None."""
    try:
        files.check_regular(path)
        cached = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if cached.ndim != 1 or cached.dtype != np.int32 or (cached.size and not 0 <= cached.min() <= cached.max() < n_vocab):
        return None
    return cached if path.endswith(f"-{ids_digest(cached)}.npy") else None


def encode_cached(text, tok, folder=None):
    """Token ids (int32 array) of ``text``, cached in ``folder`` (default: the cache folder's ``tokens``,
    see gpt/cache.py) as tokens-<text>-<tokenizer>-<ids>.npy.

    The last part of the name is the digest of the ids themselves, so a cache file that was changed or
    swapped (say, shuffled) no longer matches its name: it is removed and the text is encoded again.
    A cache that cannot be written costs only the time to encode again next time.
    """
    folder = folder if folder is not None else cache.cache_dir("tokens")
    stem = os.path.join(folder, f"tokens-{text_digest(text)}-{tokenizer_digest(tok)}")
    for path in sorted(glob.glob(glob.escape(stem) + "-*.npy")):
        cached = _cached_ids(path, tok.n_vocab)
        if cached is not None:
            return cached
        cache.remove_quietly(path)
    ids = np.asarray(tok.encode(text, allowed_special="all"), dtype=np.int32)
    cache.try_write(lambda path: save_npy(ids, path), f"{stem}-{ids_digest(ids)}.npy")
    return ids


def data_digests(tok, ids, recorded=None):
    """{"tokenizer", "ids"}: digests a checkpoint records of what its run trains on. With ``recorded`` (the
    "data" entry of a checkpoint being resumed) raise ValueError when either differs from it."""
    now = {"tokenizer": tokenizer_digest(tok), "ids": ids_digest(ids)}
    if recorded:
        if recorded.get("tokenizer", now["tokenizer"]) != now["tokenizer"]:
            raise ValueError("the tokenizer in the checkpoint folder is not the one this run was trained with "
                             "(tokenizer.bpe was changed); restore it, or start a new run")
        if recorded.get("ids", now["ids"]) != now["ids"]:
            raise ValueError("the text encodes to other token ids than when this run started (the tokenizer or "
                             "its code changed); the run cannot continue exactly: start a new run")
    return now


def train_val_split(ids, val_fraction=0.1):
    """The first (1 - val_fraction) of the tokens for training, the rest for validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = int(round(len(ids) * (1.0 - val_fraction)))
    return ids[:cut], ids[cut:]


class SlidingWindowDataset:
    """Windows over a token array: item i is (ids[s : s + L], ids[s + 1 : s + L + 1]) with s = i * stride."""

    def __init__(self, ids, max_length, stride=None):
        self.ids = np.asarray(ids)
        self.max_length = int(max_length)
        self.stride = int(stride) if stride is not None else self.max_length
        if self.max_length <= 0 or self.stride <= 0:
            raise ValueError(f"max_length and stride must be positive, got {max_length} and {stride}")
        n = len(self.ids) - self.max_length        # windows need max_length + 1 tokens
        self.n = 0 if n <= 0 else (n - 1) // self.stride + 1

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not -self.n <= i < self.n:
            raise IndexError(f"window {i} of {self.n}")
        s = (i % self.n) * self.stride
        return self.ids[s:s + self.max_length], self.ids[s + 1:s + self.max_length + 1]

    def batch(self, indices):
        """Inputs and targets (B, max_length) int64 for the windows at ``indices``."""
        starts = np.asarray(indices, dtype=np.int64)[:, None] * self.stride + np.arange(self.max_length)
        return self.ids[starts].astype(np.int64), self.ids[starts + 1].astype(np.int64)


class BatchSampler:
    """Shuffled batches of windows, epoch after epoch, with a position that can be saved and restored.

    Epoch e visits the windows in the order ``default_rng([seed, e]).permutation(n)``, so the order
    depends only on (seed, epoch) and resuming at (epoch, position) replays exactly the same batches.
    The last incomplete batch of an epoch is dropped.
    """

    def __init__(self, dataset, batch_size, seed=0, shuffle=True):
        if len(dataset) < batch_size:
            raise ValueError(f"the training text gives only {len(dataset)} windows of {dataset.max_length} tokens, "
                             f"fewer than one batch of {batch_size}: use a smaller --batch-size or "
                             "--context-length, or more text")
        self.dataset, self.batch_size, self.seed, self.shuffle = dataset, batch_size, seed, shuffle
        self.epoch, self.position = 0, 0
        self._order = None

    @property
    def batches_per_epoch(self):
        return len(self.dataset) // self.batch_size

    def _epoch_order(self):
        if self._order is None:
            n = len(self.dataset)
            self._order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle
                           else np.arange(n))
        return self._order

    def next_batch(self):
        """(inputs, targets), each (batch_size, max_length); moves the position on."""
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        order = self._epoch_order()
        idx = order[self.position * self.batch_size:(self.position + 1) * self.batch_size]
        self.position += 1
        return self.dataset.batch(idx)

    def state_dict(self):
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state):
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None
        self.seed = int(state.get("seed", self.seed))


def eval_batches(dataset, batch_size, max_batches=None):
    """The dataset's windows in order, in batches (the last may be smaller), at most ``max_batches``."""
    n = len(dataset)
    count = 0
    for start in range(0, n, batch_size):
        if max_batches is not None and count >= max_batches:
            return
        yield dataset.batch(np.arange(start, min(start + batch_size, n)))
        count += 1
