"""A dense layer as one op, y = x W^T + b, with its hand-written backward.

Its composed twin: ``reference.linear`` (a matmul and an add). Batch axes are folded into rows, so x is
(N, in); the schedule at the bottom shares the rows (or the two backward products) over the threads.

The plain rung, at the top of this file: ``plain_linear`` and ``plain_linear_backward``
(``reference.PLAIN["linear"]``): NumPy in and out, the backward written by hand from the formulas.
"""
from functools import partial

import numpy as np

from .. import amp, backend, config, parallel, twins as reference
from ..tensor import Tensor

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_linear(x, w, b):
    """y = x W^T + b: x (..., in), W (out, in), b (out,)."""
    return x @ w.T + b, (x, w)


def plain_linear_backward(g, cache):
    """dx = g W; dW = g^T x and db = 1^T g over all rows (batch axes folded into rows)."""
    x, w = cache
    g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    return g @ w, g2.T @ x2, g2.sum(axis=0)


# ----- the math, on a block of rows x (N, in), W (out, in), b (out,) -----


def _forward_rows(x, w, b, y):
    """y = x W^T + b."""
    backend.xp_of(x).matmul(x, w.T, out=y)
    if b is not None:
        y += b                                          # while the block is still in cache


def _input_grad(g, w, dx):
    """dx = g W  (dy/dx = W)."""
    backend.xp_of(g).matmul(g, w, out=dx)


def _weight_grads(g, x, dw, db, ones):
    """dW = g^T x (dy/dW: each row's outer product g x^T, summed) and db = 1^T g (dy/db = 1), for a block
    of output features (g's columns); either may be None. The column sums of db as one BLAS product."""
    xp = backend.xp_of(g)
    if dw is not None:
        xp.matmul(g.T, x, out=dw)
    if db is not None:
        xp.matmul(ones, g, out=db)


# ----- the op -----

def linear(x, weight, bias=None):
    """x (..., in) times weight (out, in) transposed, plus bias (out,) -> (..., out)."""
    x, weight, bias = amp.low("linear", x, weight, bias)      # 16-bit inside tt.autocast
    out_f, in_f = weight.shape
    if x.shape[-1] != in_f:
        raise ValueError(f"linear: input of shape {x.shape} has {x.shape[-1]} features, weight {weight.shape} expects {in_f}")
    if bias is not None and tuple(bias.shape) != (out_f,):
        raise ValueError(f"linear: bias of shape {bias.shape}, expected ({out_f},)")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise TypeError(f"linear: input is {x.dtype}, weight {weight.dtype}"
                        + (f", bias {bias.dtype}" if bias is not None else "") + "; they must match")
    if x.device != weight.device:
        raise RuntimeError(f"linear: input on {x.device}, weight on {weight.device}; move one with .to()")
    if bias is not None and bias.device != weight.device:
        raise RuntimeError(f"linear: weight on {weight.device}, bias on {bias.device} (different devices); "
                           "move one with .to()")
    if config.reference_ops:
        return reference.linear(x, weight, bias)
    w = weight.data
    b = bias.data if bias is not None else None
    x2 = x.data.reshape(-1, in_f)                       # (N, in)
    y = _forward(x2, w, b)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        want = (x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
        dx, dw, db = _backward(g.reshape(-1, out_f), x2, w, b, *want)
        grads = (dx.reshape(x.shape) if dx is not None else None, dw)
        return grads + (db,) if bias is not None else grads
    return Tensor._make(y.reshape(x.shape[:-1] + (out_f,)), parents, backward, "linear",
                        twin=lambda: reference.linear(x, weight, bias))


# ----- the schedule: rows, or the two backward products, shared over the threads -----

def _forward(x, w, b):
    """y (N, out): on the CPU the rows cut into one block per thread; CuPy runs the product as one kernel."""
    xp = backend.xp_of(x)
    n = x.shape[0]
    y = xp.empty((n, w.shape[0]), dtype=w.dtype)
    rows = lambda span: _forward_rows(x[span[0]:span[1]], w, b, y[span[0]:span[1]])   # noqa: E731
    if xp is np:
        parallel.run(rows, parallel.spans(n, n * w.size), uses_blas=True)
    else:
        rows((0, n))
    return y


def _backward(g, x, w, b, want_x, want_w, want_b):
    """(dx, dW, db), None where not wanted. dx and dW are products of the same size: with both wanted,
    one thread takes each whole (both stay on the calling thread below BLAS_MIN_WORK multiply-adds, as
    the forward's rows do); with one, its rows are split over the threads."""
    xp = backend.xp_of(g)
    n, (out_f, in_f) = g.shape[0], w.shape
    dx = xp.empty((n, in_f), dtype=w.dtype) if want_x else None
    dw = xp.empty_like(w) if want_w else None
    db = xp.empty_like(b) if want_b else None
    ones = xp.ones(n, dtype=w.dtype) if db is not None else None

    def input_rows(span):
        lo, hi = span
        _input_grad(g[lo:hi], w, dx[lo:hi])

    def weight_rows(span):                              # a block of output features
        lo, hi = span
        _weight_grads(g[:, lo:hi], x, dw[lo:hi] if dw is not None else None,
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
