"""The schedule of the dense layer (ops/linear.py): its rows, or its two backward products, shared over the
threads (BLAS held to one thread in each); on a GPU each product is one kernel already.

The math comes in as functions (``forward_rows``, ``input_grad``, ``weight_grads``), applied to blocks.
"""
from functools import partial

import numpy as np

from .. import backend
from . import parallel


def forward(forward_rows, x, w, b):
    """y (N, out) by ``forward_rows``: on the CPU the rows cut into one block per thread; CuPy runs the
    product as one kernel."""
    xp = backend.xp_of(x)
    n = x.shape[0]
    y = xp.empty((n, w.shape[0]), dtype=w.dtype)
    rows = lambda span: forward_rows(x[span[0]:span[1]], w, b, y[span[0]:span[1]])   # noqa: E731
    if xp is np:
        parallel.run(rows, parallel.spans(n, n * w.size), uses_blas=True)
    else:
        rows((0, n))
    return y


def backward(input_grad, weight_grads, g, x, w, b, want_x, want_w, want_b):
    """(dx, dW, db) by ``input_grad`` and ``weight_grads``, None where not wanted. dx and dW are products
    of the same size: with both wanted, one thread takes each whole (both stay on the calling thread
    below BLAS_MIN_WORK multiply-adds, as the forward's rows do); with one, its rows are split over the
    threads."""
    xp = backend.xp_of(g)
    n, (out_f, in_f) = g.shape[0], w.shape
    dx = xp.empty((n, in_f), dtype=w.dtype) if want_x else None
    dw = xp.empty_like(w) if want_w else None
    db = xp.empty_like(b) if want_b else None
    ones = xp.ones(n, dtype=w.dtype) if db is not None else None

    def input_rows(span):
        lo, hi = span
        input_grad(g[lo:hi], w, dx[lo:hi])

    def weight_rows(span):                              # a block of output features
        lo, hi = span
        weight_grads(g[:, lo:hi], x, dw[lo:hi] if dw is not None else None,
                     db[lo:hi] if db is not None else None, ones)
    work = n * in_f * out_f
    if dx is not None and (dw is not None or db is not None):
        jobs = [partial(input_rows, (0, n)), partial(weight_rows, (0, out_f))]
        if work < parallel.BLAS_MIN_WORK:               # too small for a hand-off: both on this thread
            jobs = [lambda both=jobs: [job() for job in both]]
    elif dx is not None:
        jobs = [partial(input_rows, span) for span in parallel.spans(n, work)]
    else:
        jobs = [partial(weight_rows, span) for span in parallel.spans(out_f, work)]
    if xp is np:
        parallel.run(lambda job: job(), jobs, uses_blas=True)
    else:                                               # CuPy: each product is one kernel already
        for job in jobs:
            job()
    return dx, dw, db
