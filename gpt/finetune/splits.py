"""A seeded train / val / test split shared by both fine-tuning data sets."""
import numpy as np


def seeded_split(items, fractions, seed=0):
    """Shuffle ``items`` with ``seed`` and cut into train / val / test by ``fractions`` (the rest is test)."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_train = int(len(items) * fractions[0])
    n_val = int(len(items) * fractions[1])
    pick = lambda idx: [items[i] for i in idx]
    return pick(order[:n_train]), pick(order[n_train:n_train + n_val]), pick(order[n_train + n_val:])
