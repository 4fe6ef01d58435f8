"""The schedule of layer norm (ops/norm.py): where its passes run, in which blocks, with which BLAS trick.

The formulas stay in ops/norm.py and come in here as functions; this file only decides how they are applied.
"""
import numpy as np

from .. import backend
from . import parallel

# On one thread (split, its short NumPy calls queue for the GIL), with BLAS held to one thread (its own
# threads would only be left spinning against the next op's). Backward goes in cache-sized row blocks, so
# its ~13 passes over a block find it in the core's cache; forward only for its factor rstd w^T (the whole
# forward in blocks was measured slower: the calls per block cost more than the cache saves).


def row_blocks(d):
    """Row slices of about CACHE_BLOCK elements of ``d`` (N, D) on the CPU; all rows as one on a GPU."""
    n = d.shape[0]
    step = n if backend.xp_of(d) is not np else max(1, parallel.CACHE_BLOCK // max(1, d.shape[1]))
    return [slice(lo, lo + step) for lo in range(0, n, step)] or [slice(0, 0)]


def forward(forward_rows, d, out, w, b, eps):
    """``forward_rows(d, out, w, b, eps)`` on one thread, BLAS held to one; returns what it returns."""
    return parallel.on_one_thread(lambda: forward_rows(d, out, w, b, eps))


def backward(from_x, from_xc, g, d, saved, gx, w, want_w, want_b):
    """dx block by block (``from_x`` or ``from_xc``, as the forward ran), on one thread; dw and db summed
    over the blocks."""
    return parallel.on_one_thread(lambda: _backward(from_x, from_xc, g, d, saved, gx, w, want_w, want_b))


def _backward(from_x, from_xc, g, d, saved, gx, w, want_w, want_b):
    dw = db = None
    kind, first, rstd = saved
    for r in row_blocks(g):
        if kind == "x":
            block_dw, block_db = from_x(g[r], d[r], first[r], rstd[r], gx[r], w, want_w, want_b)
        else:
            block_dw, block_db = from_xc(g[r], first[r], rstd[r], gx[r], w, want_w, want_b)
        dw = block_dw if dw is None else dw + block_dw
        db = block_db if db is None else db + block_db
    return dw, db


def spread(xp, out, a, u, a2=None, u2=None):
    """out[i, j] = a[i] u[j] (a u^T, plus a2 u2^T when given) as one BLAS product, so the factor is then
    applied by a plain pass: NumPy's broadcast a[:, None] * x runs at about half a plain pass's speed on
    rows this short."""
    left = xp.zeros((len(a), 2), dtype=out.dtype)       # rank 2 on purpose: NumPy sends a rank-1
    left[:, 0] = a                                      # product (k = 1) to a slow non-BLAS loop
    right = xp.zeros((2, len(u)), dtype=out.dtype)
    right[0] = u
    if a2 is not None:
        left[:, 1], right[1] = a2, u2
    xp.matmul(left, right, out=out)
    return out
