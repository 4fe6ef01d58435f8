"""The schedule of cross-entropy (ops/loss.py): cache-sized row blocks shared over the threads on the CPU,
fused kernels on a GPU. The math comes in as the functions applied to each block."""
import numpy as np

from .. import backend
from ..cuda import kernels as cuda_kernels
from . import parallel


def stats(row_stats, x, kernel):
    """By ``row_stats``, per row: the max m (N, 1), lse = log(sum_e) and sum_e = sum(exp(x - m)) (N,)
    (None from the GPU kernel, whose backward takes lse); no (N, C) array is kept."""
    if kernel:
        return cuda_kernels.row_max_lse(x) + (None,)     # one GPU kernel, one read of the logits
    xp = backend.xp_of(x)
    m = xp.empty((x.shape[0], 1), dtype=x.dtype)
    sum_e = xp.empty(x.shape[0], dtype=x.dtype)
    in_row_blocks(row_stats, x, m, sum_e)
    return m, xp.log(sum_e), sum_e


def in_row_blocks(fn, x, *arrays):
    """``fn(x, *arrays)`` on matching row blocks: on the CPU about a megabyte of x each (every pass over a
    block then runs in the CPU's cache), shared over the threads; on a GPU all rows as one block."""
    if backend.xp_of(x) is not np:
        fn(x, *arrays)
        return
    step = max(1, (1 << 18) // max(1, x.shape[1]))
    blocks = [slice(i, i + step) for i in range(0, x.shape[0], step)]
    parallel.run(lambda rows: fn(x[rows], *(a[rows] for a in arrays)), blocks)
