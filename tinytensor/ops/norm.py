"""Layer normalisation over the last axis, fused with its hand-derived backward."""
import numpy as np

from .. import backend, cuda_kernels, parallel
from ..tensor import Tensor
from .common import as_tensor, same_device


def _row_mean(a, xp):
    """Mean over the last axis, keepdims, as a matrix-vector product: BLAS beats NumPy's reduction here."""
    D = a.shape[-1]
    if a.ndim < 2:
        return a.mean(axis=-1, keepdims=True)
    return (a.reshape(-1, D) @ xp.full(D, 1.0 / D, dtype=a.dtype)).reshape(a.shape[:-1] + (1,))


def _batch_sum(a, xp):
    """Sum over every axis but the last (a column sum, again as one matrix-vector product)."""
    if a.ndim < 2:
        return a
    D = a.shape[-1]
    return xp.ones(a.size // D, dtype=a.dtype) @ a.reshape(-1, D)


def _forward_rows(d, xhat, rstd, out, w, b, eps):
    """One block of rows (N, D): xhat = (d - mean) / sqrt(var + eps), out = xhat w + b, rstd kept."""
    xp = backend.xp_of(d)
    xp.subtract(d, d[:, :1], out=xhat)                   # shift by each row's first value: a BLAS mean of
    xhat -= _row_mean(xhat, xp)                          # the small differences keeps float32 precise
    rstd[...] = 1 / xp.sqrt(_row_mean(xhat * xhat, xp) + d.dtype.type(eps))
    xhat *= rstd
    if w is not None:
        xp.multiply(xhat, w, out=out)
    else:
        out[...] = xhat
    if b is not None:
        out += b


def _backward_rows(g, xhat, rstd, gx, w_over_d, w, want_w, want_b):
    """One block of rows: with gh = g w, dx = rstd (gh - mean(gh) - xhat mean(gh xhat)) into ``gx``.

    mean(gh) = g . (w / D) and mean(gh xhat) = (g xhat) . (w / D) are matrix-vector products, and
    g xhat is also the block's share of dw (a column sum); both shares (dw, db) are returned.
    """
    xp = backend.xp_of(g)
    g_xhat = g * xhat
    mean_gh_xhat = (g_xhat @ w_over_d)[:, None]
    mean_gh = (g @ w_over_d)[:, None]
    gh = g * w if w is not None else g
    xp.multiply(xhat, mean_gh_xhat, out=gx)
    gx += mean_gh
    xp.subtract(gh, gx, out=gx)
    gx *= rstd
    return (_batch_sum(g_xhat, xp) if want_w else None), (_batch_sum(g, xp) if want_b else None)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias, statistics over the last axis (population variance)."""
    xp = backend.xp_of(x.data)
    D = x.shape[-1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (D,):
            raise ValueError(f"layer_norm: {name} of shape {tuple(p.shape)} for input of shape {x.shape}; "
                             f"expected ({D},)")
    weight = as_tensor(weight, x) if weight is not None else None
    bias = as_tensor(bias, x) if bias is not None else None
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.dtype != x.dtype:
            raise TypeError(f"layer_norm: input is {x.dtype} but {name} is {p.dtype}; convert one with .astype()")
    same_device("layer_norm", x, weight, bias)
    if cuda_kernels.use(xp, "layer_norm") and cuda_kernels.layer_norm_supported(x, weight, bias):
        return cuda_kernels.layer_norm(x, weight, bias, eps)     # one fused kernel per pass on a GPU
    d = x.data
    D = x.shape[-1]
    shape = d.shape
    rows = (lambda a: a.reshape(-1, D)) if d.ndim >= 1 else (lambda a: a.reshape(1, 1))
    xhat = xp.empty(shape, dtype=d.dtype)                # normalised input, kept for backward
    rstd = xp.empty(shape[:-1] + (1,) if d.ndim else (1,), dtype=d.dtype)
    out = xp.empty(shape, dtype=d.dtype)
    w = weight.data if weight is not None else None
    b = bias.data if bias is not None else None
    parallel.for_row_blocks(lambda *blk: _forward_rows(*blk, w, b, eps), rows(d), rows(xhat),
                            rstd.reshape(-1, 1), rows(out), uses_blas=True)
    parents = tuple(p for p in (x, weight, bias) if p is not None)

    def backward(g):
        gx = xp.empty(shape, dtype=d.dtype)
        g_rows, xhat_rows, rstd_rows, gx_rows = rows(g), rows(xhat), rstd.reshape(-1, 1), rows(gx)
        want_w = weight is not None and weight.requires_grad
        want_b = bias is not None and bias.requires_grad
        n = len(g_rows)
        blocks = parallel.spans(n, g_rows.size, parallel.MIN_ELEMENTS) if xp is np else [(0, n)]
        partial_w, partial_b = [None] * len(blocks), [None] * len(blocks)
        w_over_d = (w if w is not None else xp.ones(D, dtype=d.dtype)) / d.dtype.type(D)

        def block(i):           # dx for a block of rows, and that block's share of dw and db
            lo, hi = blocks[i]
            partial_w[i], partial_b[i] = _backward_rows(g_rows[lo:hi], xhat_rows[lo:hi], rstd_rows[lo:hi],
                                                        gx_rows[lo:hi], w_over_d, w, want_w, want_b)
        parallel.run(block, range(len(blocks)), uses_blas=True)
        grads = [gx]
        if weight is not None:
            grads.append(sum(partial_w[1:], partial_w[0]) if want_w else None)
        if bias is not None:
            grads.append(sum(partial_b[1:], partial_b[0]) if want_b else None)
        return tuple(grads)
    return Tensor._make(out, parents, backward, "layer_norm")
