"""Elementwise work split over a few threads: NumPy releases the GIL inside its loops, so two halves of a
large array can be computed at once. Used on the hot path for large CPU arrays only; small arrays (and
CuPy arrays) run as one block in the calling thread.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

WORKERS = max(1, min(4, os.cpu_count() or 1))
MIN_ELEMENTS = 1 << 18        # below about a megabyte the thread hand-off costs more than it saves
_pool = None


def set_workers(n):
    """Use ``n`` threads for elementwise work (1 turns the splitting off)."""
    global WORKERS, _pool
    WORKERS, _pool = max(1, int(n)), None


def for_row_blocks(fn, *arrays):
    """Call ``fn(*blocks)`` on matching row blocks of ``arrays`` (same leading dimension), in parallel
    when the arrays are large NumPy arrays and more than one worker is allowed."""
    global _pool
    first = arrays[0]
    if WORKERS == 1 or type(first) is not np.ndarray or first.size < MIN_ELEMENTS or first.ndim == 0 \
            or first.shape[0] < WORKERS:
        fn(*arrays)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="tinytensor")
    edges = np.linspace(0, first.shape[0], WORKERS + 1).astype(int)
    jobs = [_pool.submit(fn, *(a[lo:hi] for a in arrays)) for lo, hi in zip(edges[:-1], edges[1:])]
    for job in jobs:
        job.result()
