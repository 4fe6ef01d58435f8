"""Causal masks for attention, built once per shape and kept in a small cache of bounded size.

Query i may look at key j when j <= i + (S - T): queries are aligned to the end of the keys, so with a
KV cache the newest query sees every key. Training asks for the same (T, S) in every layer of every
step, so each mask is built once and reused. Prompts of many lengths (sampling without a KV cache,
batches of varying length) would each add one, so only the most recently used are kept: at most
MAX_ENTRIES arrays and MAX_BYTES in all; an array larger than MAX_BYTES is built on each call instead.
"""
import threading
from collections import OrderedDict

import numpy as np

MAX_ENTRIES = 16
MAX_BYTES = 32 << 20

_cache = OrderedDict()      # key -> array, least recently used first
_lock = threading.Lock()    # ops run in several threads at once


def _cached(key, build):
    """The array stored under ``key``, or ``build()``'s result, kept while the bounds allow."""
    with _lock:
        array = _cache.get(key)
        if array is not None:
            _cache.move_to_end(key)
            return array
    array = build()
    if array.nbytes <= MAX_BYTES:
        with _lock:
            _cache[key] = array
            while len(_cache) > MAX_ENTRIES or sum(a.nbytes for a in _cache.values()) > MAX_BYTES:
                _cache.popitem(last=False)
    return array


def causal_mask(T, S, xp):
    """Boolean (T, S): True where query i must not see key j, i.e. j > i + (S - T)."""
    def build():
        i = np.arange(T)[:, None] + (S - T)
        return xp.asarray(np.arange(S)[None, :] > i)
    return _cached((T, S, xp.__name__), build)


def causal_bias(T, S, dtype, xp):
    """(T, S) additive mask: 0 where query i may see key j, -inf where it may not."""
    def build():
        return xp.where(causal_mask(T, S, xp), xp.asarray(-np.inf, dtype=dtype), xp.asarray(0, dtype=dtype))
    return _cached(("bias", T, S, str(dtype), xp.__name__), build)
