"""RMS normalisation over the last axis (Llama, Qwen), fused with its hand-derived backward.

Its composed twin: ``reference.rms_norm``. Layer norm without the centring and without the bias: each
row is divided by its root mean square. On rows (N, D), with rstd = 1 / sqrt(mean(x^2) + eps) per row
and xhat = x rstd:

    out = xhat w
    dx  = rstd (gh - xhat mean(gh xhat))        with gh = g w, the gradient reaching xhat, as
                                                d xhat_i / d x_j = rstd (δ_ij - xhat_i xhat_j / D)
        = rstd gh - x (rstd^3 (gh . x) / D)     (the form computed: x and rstd are what is kept)
    dw  = sum over rows of g xhat = rstd^T (g x)

Qwen3's q/k norm is this op over each head's vector: x (B, T, H, D) with a weight of shape (D,).

The plain rung, at the top of this file: ``plain_rms_norm`` and ``plain_rms_norm_backward``
(``reference.PLAIN["rms_norm"]``): NumPy in and out, the backward written by hand from the formulas.
"""
import numpy as np

from .. import amp, backend, config, twins as reference
from ..schedule import parallel
from ..accumulate import Owned
from ..tensor import Tensor
from .common import as_tensor, floating, row_dots, same_device

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_rms_norm(x, w, eps=1e-6):
    """out = xhat w with xhat = x rstd, rstd = 1 / sqrt(mean(x^2) + eps), over the last axis."""
    rstd = 1 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    xhat = x * rstd
    return xhat * w, (xhat, rstd, w)


def plain_rms_norm_backward(g, cache):
    """dx = rstd (gh - xhat mean(gh xhat)), gh = g w; dw = sum over rows of g xhat."""
    xhat, rstd, w = cache
    gh = g * w
    dx = rstd * (gh - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
    return dx, (g * xhat).sum(axis=tuple(range(g.ndim - 1)))


# ----- the math, on rows (N, D) -----


def _forward_rows(x, w, eps, rstd, out):
    """out = x rstd w with rstd = 1 / sqrt(mean(x^2) + eps) per row (filled in for backward)."""
    xp = backend.xp_of(x)
    one = x.dtype.type
    rstd[:] = 1 / xp.sqrt(row_dots(x, x) / one(x.shape[1]) + one(eps))
    xp.multiply(x, rstd[:, None], out=out)
    if w is not None:
        out *= w


def _backward_rows(g, x, w, rstd, gx):
    """gx = rstd gh - x rstd^3 (gh . x) / D, with gh = g w."""
    xp = backend.xp_of(g)
    if w is not None:
        xp.multiply(g, w, out=gx)                                     # gh
    else:
        gx[...] = g
    along = row_dots(gx, x) * rstd ** 3 / x.dtype.type(x.shape[1])   # (N,): rstd^3 (gh . x) / D
    gx *= rstd[:, None]
    gx -= x * along[:, None]


# ----- the op -----

def check_norm_weight(op, x, weight):
    """``weight`` (None, or a (D,) tensor of x's dtype and device) as a Tensor, or a clear error."""
    if x.ndim == 0:
        raise ValueError(f"{op}: the input is 0-d; it normalises the last axis, so give it at least one")
    if weight is None:
        return None
    D = x.shape[-1]
    if tuple(weight.shape) != (D,):
        raise ValueError(f"{op}: weight of shape {tuple(weight.shape)} for input of shape {x.shape}; "
                         f"expected ({D},)")
    weight = as_tensor(weight, x)
    if weight.dtype != x.dtype:
        raise TypeError(f"{op}: input is {x.dtype} but weight is {weight.dtype}; convert one with .astype()")
    same_device(op, x, weight)
    return weight


def rms_norm(x, weight=None, eps=1e-6):
    """x / sqrt(mean(x^2) + eps) * weight, statistics over the last axis (PyTorch's F.rms_norm, with
    HF's Llama and Qwen default eps)."""
    floating("rms_norm", x)
    x, weight = amp.high("rms_norm", x, weight)                   # float32 inside tt.autocast
    weight = check_norm_weight("rms_norm", x, weight)
    if config.reference_ops:
        return reference.rms_norm(x, weight, eps)
    xp = backend.xp_of(x.data)
    D = x.shape[-1]
    d = x.data.reshape(-1, D)                            # rows (N, D); a copy only when not contiguous
    rstd = xp.empty(d.shape[0], dtype=d.dtype)
    out = xp.empty(d.shape, dtype=d.dtype)
    w = weight.data if weight is not None else None
    parallel.for_row_blocks(lambda xb, rb, out_b: _forward_rows(xb, w, eps, rb, out_b), d, rstd, out)
    parents = (x,) if weight is None else (x, weight)

    def backward(g):
        g = g.reshape(d.shape)
        gx = xp.empty(d.shape, dtype=d.dtype)
        parallel.for_row_blocks(lambda gb, xb, rb, out_b: _backward_rows(gb, xb, w, rb, out_b), g, d, rstd, gx)
        gx = Owned(gx.reshape(x.shape))                  # made for x alone: its other gradients may be summed in it
        if weight is None:
            return (gx,)
        dw = rstd @ (g * d) if weight.requires_grad else None           # sum over rows of g xhat
        return gx, dw
    return Tensor._make(out.reshape(x.shape), parents, backward, "rms_norm",
                        twin=lambda: reference.rms_norm(x, weight, eps))

