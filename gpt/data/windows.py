"""Windows and batches: token ids in, (inputs, targets) batches out.

A language model learns to predict token t+1 from tokens 0..t. A window of ``max_length + 1`` tokens
gives an input (its first max_length tokens) and a target (the same shifted by one). Windows start
every ``stride`` tokens: stride = max_length tiles the text without overlap, a smaller stride overlaps.
(The book's GPTDatasetV1 and its DataLoader: ``SlidingWindowDataset`` and ``BatchSampler``.)
"""
import numpy as np


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


class DataLoader:
    """A dataset's windows in batches, one pass per ``for`` (as PyTorch's DataLoader, which the book uses):
    ``shuffle`` draws a new order each pass from its own generator seeded with ``seed``; ``drop_last``
    leaves out a last batch shorter than ``batch_size``. Each batch is (inputs, targets), (B, max_length)."""

    def __init__(self, dataset, batch_size, shuffle=False, drop_last=False, seed=0):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.dataset.batch(order[start:start + self.batch_size])


def eval_batches(dataset, batch_size, max_batches=None):
    """The dataset's windows in order, in batches (the last may be smaller), at most ``max_batches``."""
    n = len(dataset)
    count = 0
    for start in range(0, n, batch_size):
        if max_batches is not None and count >= max_batches:
            return
        yield dataset.batch(np.arange(start, min(start + batch_size, n)))
        count += 1
