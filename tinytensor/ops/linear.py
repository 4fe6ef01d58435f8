"""A dense layer as one op, y = x W^T + b: batch axes folded into rows, the rows shared over threads."""
from functools import partial

import numpy as np

from .. import backend, parallel
from ..tensor import Tensor


def linear(x, weight, bias=None):
    """x (..., in) times weight (out, in) transposed, plus bias (out,) -> (..., out)."""
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
    xp = backend.xp_of(x.data)
    w = weight.data
    b = bias.data if bias is not None else None
    x2 = x.data.reshape(-1, in_f)                       # (N, in)
    n = x2.shape[0]
    y = xp.empty((n, out_f), dtype=w.dtype)
    threads = xp is np                                  # CuPy runs the whole product as one kernel

    def forward_rows(span):                             # a block of rows: y = x W^T + b
        lo, hi = span
        xp.matmul(x2[lo:hi], w.T, out=y[lo:hi])
        if b is not None:
            y[lo:hi] += b                               # while the block is still in cache
    if threads:
        parallel.run(forward_rows, parallel.spans(n, n * in_f * out_f), uses_blas=True)
    else:
        forward_rows((0, n))
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        g2 = g.reshape(-1, out_f)                       # (N, out)
        gx = xp.empty((n, in_f), dtype=w.dtype) if x.requires_grad else None
        gw = xp.empty_like(w) if weight.requires_grad else None
        gb = xp.empty_like(b) if bias is not None and bias.requires_grad else None
        ones = xp.ones(n, dtype=w.dtype) if gb is not None else None

        def input_rows(span):                           # dy/dx = W
            lo, hi = span
            xp.matmul(g2[lo:hi], w, out=gx[lo:hi])

        def weight_rows(span):                          # dy/dW = x (an outer product per row), dy/db = 1
            lo, hi = span
            if gw is not None:
                xp.matmul(g2[:, lo:hi].T, x2, out=gw[lo:hi])
            if gb is not None:
                xp.matmul(ones, g2[:, lo:hi], out=gb[lo:hi])   # column sums as one BLAS product
        work = n * in_f * out_f
        if gx is not None and (gw is not None or gb is not None):
            # the two products have the same number of multiply-adds: a thread each, whole
            jobs = [partial(input_rows, (0, n)), partial(weight_rows, (0, out_f))]
        elif gx is not None:
            jobs = [partial(input_rows, span) for span in parallel.spans(n, work)]
        else:
            jobs = [partial(weight_rows, span) for span in parallel.spans(out_f, work)]
        if threads:
            parallel.run(lambda job: job(), jobs, uses_blas=True)
        else:                                           # CuPy: each product is one kernel already
            for job in jobs:
                job()
        grads = (gx.reshape(x.shape) if gx is not None else None, gw)
        return grads + (gb,) if bias is not None else grads
    return Tensor._make(y.reshape(x.shape[:-1] + (out_f,)), parents, backward, "linear")
