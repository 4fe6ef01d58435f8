"""Layer normalisation over the last axis, fused with its hand-derived backward.

Its composed twin: ``reference.layer_norm`` (mean, subtract, variance, divide). Here, on rows (N, D),
with xc = x - mean, rstd = 1 / sqrt(var + eps) per row and xhat = xc rstd:

    out = xhat w + b
    dx  = rstd (gh - mean(gh) - xhat mean(gh xhat))      with gh = g w, the gradient reaching xhat, as
                                                         d xhat_i / d x_j = rstd (δ_ij - 1/D - xhat_i xhat_j / D)
    dw  = sum over rows of g xhat,   db = sum over rows of g

The same formulas run one of two ways. From x itself (``_forward_from_x``, ``_backward_from_x``), as
PyTorch does: var = mean(x^2) - mean^2 from one read of x, and only mean and rstd kept for backward. That
subtraction loses float digits when a row's mean is large against its spread, so when any row has
mean^2 > var (or is not finite) the op runs from xc = x - mean instead (``_forward_rows``, ``_backward_rows``:
exact far from 0, one more array written and kept).

The plain rung, at the top of this file: ``plain_layer_norm`` and ``plain_layer_norm_backward``
(``reference.PLAIN["layer_norm"]``): NumPy in and out, the backward written by hand from the formulas.
"""
import numpy as np

from .. import amp, backend, config, twins as reference
from ..cuda import kernels as cuda_kernels
from ..accumulate import Owned
from ..schedule import norm as schedule
from ..schedule.norm import spread
from ..tensor import Tensor
from .common import as_tensor, floating, row_dots, same_device

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_layer_norm(x, w, b, eps=1e-5):
    """out = xhat w + b with xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps), over the last axis."""
    xc = x - x.mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * rstd
    return xhat * w + b, (xhat, rstd, w)


def plain_layer_norm_backward(g, cache):
    """dx = rstd (gh - mean(gh) - xhat mean(gh xhat)), gh = g w; dw = sum g xhat, db = sum g (over rows)."""
    xhat, rstd, w = cache
    gh = g * w
    dx = rstd * (gh - gh.mean(axis=-1, keepdims=True) - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
    rows = tuple(range(g.ndim - 1))
    return dx, (g * xhat).sum(axis=rows), g.sum(axis=rows)


# ----- the math, on rows (N, D), from x (rows whose mean is not large against their spread) -----


def _moments(d, eps):
    """(mean, rstd) per row from one read of x each, var = mean(x^2) - mean^2; None when some row has
    mean^2 > var (or is not finite): there the subtraction would lose digits, and xc is needed."""
    xp = backend.xp_of(d)
    D = d.shape[1]
    mean = d @ xp.full(D, 1.0 / D, dtype=d.dtype)      # the row means as one product
    square = mean * mean
    var = row_dots(d, d) / d.dtype.type(D) - square
    if not bool((square <= var).all()):
        return None
    return mean, 1 / xp.sqrt(var + d.dtype.type(eps))


def _forward_from_x(d, mean, rstd, out, w, b):
    """out = (x - mean) rstd w + b = x (rstd w^T) + (-mean rstd w^T + 1 b^T): the second part as one
    rank-2 product, the first added block by block (``schedule.row_blocks``), its factor made and used in cache."""
    xp = backend.xp_of(d)
    if b is None:
        spread(xp, out, -mean * rstd, w)
    else:
        spread(xp, out, -mean * rstd, w, xp.ones_like(mean), b)
    blocks = schedule.row_blocks(d)
    scratch = xp.empty((min(len(d), blocks[0].stop), d.shape[1]), dtype=d.dtype)
    for r in blocks:
        part = spread(xp, scratch[:len(rstd[r])], rstd[r], w)      # rstd w^T for the block's rows
        part *= d[r]
        out[r] += part


def _backward_from_x(g, d, mean, rstd, gx, w, want_w, want_b):
    """dx = rstd (gh - mean(gh)) - k (x - mean) into ``gx``, with k = rstd^2 mean(gh xhat) and
    mean(gh xhat) = rstd (mean(gh x) - mean mean(gh)); returns dw = rstd^T (g x) - (rstd mean)^T g and
    db = 1^T g (None where not wanted)."""
    xp = backend.xp_of(g)
    N, D = g.shape
    g_x = g * d
    w_over_d = w / g.dtype.type(D)
    mean_gh = g @ w_over_d                               # mean(gh) per row (N,)
    k = rstd * rstd * rstd * (g_x @ w_over_d - mean * mean_gh)
    dw = rstd @ g_x - (rstd * mean) @ g if want_w else None
    db = xp.ones(N, dtype=g.dtype) @ g if want_b else None
    ones = xp.ones(D, dtype=g.dtype)
    spread(xp, gx, rstd, w)                              # rstd gh = (rstd w^T) * g
    gx *= g
    term = spread(xp, g_x, -k, ones)                     # (g_x's memory: its sums are taken)
    term *= d                                            # - k x
    gx += term
    gx += spread(xp, term, k * mean - rstd * mean_gh, ones)    # + k mean - rstd mean(gh)
    return dw, db


# ----- the math, on rows (N, D), from xc = x - mean (any rows) -----


def _forward_rows(d, xc, rstd, out, w, b, eps):
    """out = (d - mean) rstd w + b; fills in xc = d - mean and rstd for backward."""
    xp = backend.xp_of(d)
    D = d.shape[1]
    inv_d = xp.full(D, 1.0 / D, dtype=d.dtype)
    xp.subtract(d, (d @ inv_d)[:, None], out=xc)       # xc = x - mean  (the row means as one product)
    # float32 rounding leaves the BLAS mean slightly off; the mean of xc says by how much (0 if exact)
    error = xc @ inv_d
    var = row_dots(xc, xc) / d.dtype.type(D) - error * error
    rstd[:] = 1 / xp.sqrt(xp.maximum(var, 0) + d.dtype.type(eps))
    if float(xp.abs(error * rstd).max(initial=0)) > xp.finfo(d.dtype).eps:
        xc -= error[:, None]            # only when the rounding would show in the result (rows far from 0)
    spread(xp, out, rstd, w)            # out = xc (rstd w^T) + b = xhat w + b
    out *= xc
    if b is not None:
        out += b


def _backward_rows(g, xc, rstd, gx, w, want_w, want_b):
    """dx = rstd (gh - mean(gh) - xhat mean(gh xhat)) into ``gx``, with gh = g w and xhat = xc rstd;
    returns dw = sum_rows g xhat and db = sum_rows g (None where not wanted)."""
    xp = backend.xp_of(g)
    N, D = g.shape
    g_xc = g * xc
    w_over_d = w / g.dtype.type(D)
    mean_gh = g @ w_over_d                               # mean(gh) per row (N,)
    mean_gh_xhat = rstd * (g_xc @ w_over_d)              # mean(gh xhat) per row (N,)
    dw = rstd @ g_xc if want_w else None
    db = xp.ones(N, dtype=g.dtype) @ g if want_b else None
    # dx = rstd gh - rstd xhat mean(gh xhat) - rstd mean(gh), term by term; each term is a per-row factor
    # times a per-column one, spread into a full array (``spread``, schedule/norm.py) and applied by a plain pass
    ones = xp.ones(D, dtype=g.dtype)
    spread(xp, gx, rstd, w)                              # rstd gh = (rstd w^T) * g
    gx *= g
    term = spread(xp, g_xc, -rstd * rstd * mean_gh_xhat, ones)    # (g_xc's memory: its sums are taken)
    term *= xc                                           # - rstd xhat mean(gh xhat) = (-rstd^2 mean(gh xhat) 1^T) * xc
    gx += term
    gx += spread(xp, term, -rstd * mean_gh, ones)        # - rstd mean(gh)
    return dw, db


# ----- which formula: from x where the rows allow it -----

def _forward(d, out, w, b, eps):
    """out from x where the rows allow it, else from xc; returns what backward needs: ("x", mean, rstd)
    or ("xc", xc, rstd)."""
    xp = backend.xp_of(d)
    moments = _moments(d, eps) if d.shape[0] else None
    if moments is not None:
        _forward_from_x(d, *moments, out, w, b)
        return ("x",) + moments
    xc = xp.empty_like(d)                                # x - mean, kept for backward
    rstd = xp.empty(d.shape[0], dtype=d.dtype)
    _forward_rows(d, xc, rstd, out, w, b, eps)
    return "xc", xc, rstd


# ----- the op -----

def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias, statistics over the last axis (population variance)."""
    floating("layer_norm", x)
    x, weight, bias = amp.high("layer_norm", x, weight, bias)  # float32 inside tt.autocast
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
    if config.reference_ops:
        return reference.layer_norm(x, weight, bias, eps)
    if cuda_kernels.use(xp, "layer_norm") and cuda_kernels.layer_norm_supported(x, weight, bias):
        return cuda_kernels.layer_norm(x, weight, bias, eps)     # one fused kernel per pass on a GPU
    d = x.data
    shape = d.shape
    D = shape[-1] if d.ndim else 1
    rows = lambda a: a.reshape(-1, D)                    # noqa: E731 (every array as (rows, D))
    out = xp.empty(shape, dtype=d.dtype)
    w = weight.data if weight is not None else xp.ones(D, dtype=d.dtype)
    b = bias.data if bias is not None else None
    saved = schedule.forward(_forward, rows(d), rows(out), w, b, eps)
    parents = tuple(p for p in (x, weight, bias) if p is not None)

    def backward(g):
        gx = xp.empty(shape, dtype=d.dtype)
        want_w = weight is not None and weight.requires_grad
        want_b = bias is not None and bias.requires_grad
        dw, db = schedule.backward(_backward_from_x, _backward_rows, rows(g), rows(d), saved, rows(gx), w,
                                   want_w, want_b)
        return (Owned(gx),) + ((dw,) if weight is not None else ()) + ((db,) if bias is not None else ())
    return Tensor._make(out, parents, backward, "layer_norm", twin=lambda: reference.layer_norm(x, weight, bias, eps))
