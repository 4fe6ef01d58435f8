"""Fused softmax and log-softmax: one forward, one hand-derived backward each.

Their composed twins (exp, sum and division): ``reference.softmax`` and ``reference.log_softmax``.

The plain rung, at the top of this file: ``plain_softmax`` and ``plain_softmax_backward``
(``reference.PLAIN["softmax"]``); ``plain_log_softmax`` and ``plain_log_softmax_backward``
(``reference.PLAIN["log_softmax"]``): NumPy in and out, the backward written by hand from the formulas.
"""
import numpy as np

from .. import amp, backend, config, twins as reference
from ..tensor import Tensor
from .common import floating, nonempty_axis

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_softmax(x, axis=-1):
    """s = exp(x - max) / sum(exp(x - max)) along ``axis`` (the shift by the max cancels)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    s = e / e.sum(axis=axis, keepdims=True)
    return s, (s, axis)


def plain_softmax_backward(g, cache):
    """ds_i/dx_j = s_i (δ_ij - s_j)  =>  dx = s (g - sum(g s))."""
    s, axis = cache
    return (s * (g - (g * s).sum(axis=axis, keepdims=True)),)


def plain_log_softmax(x, axis=-1):
    """out = x - log(sum(exp(x))) along ``axis``, from x - max (the shift cancels)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return out, (out, axis)


def plain_log_softmax_backward(g, cache):
    """d out_i / d x_j = δ_ij - softmax_j  =>  dx = g - softmax sum(g), with softmax = exp(out)."""
    out, axis = cache
    return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)


# ----- the op -----

def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, computed stably by subtracting the max first."""
    floating("softmax", x)
    nonempty_axis("softmax", x, axis)
    (x,) = amp.high("softmax", x)                               # float32 inside tt.autocast
    if config.reference_ops:
        return reference.softmax(x, axis)
    xp = backend.xp_of(x.data)
    out = xp.asarray(x.data - x.data.max(axis=axis, keepdims=True))   # asarray: a 0-d result stays an array
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)

    def backward(g):  # ds_i/dx_j = s_i (δ_ij - s_j)  =>  dx = s * (g - sum(g * s))
        return (out * (g - (g * out).sum(axis=axis, keepdims=True)),)
    return Tensor._make(out, (x,), backward, "softmax", twin=lambda: reference.softmax(x, axis))


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) along ``axis``, computed stably."""
    floating("log_softmax", x)
    nonempty_axis("log_softmax", x, axis)
    (x,) = amp.high("log_softmax", x)                           # float32 inside tt.autocast
    if config.reference_ops:
        return reference.log_softmax(x, axis)
    xp = backend.xp_of(x.data)
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g):  # d/dx_j (x_i - lse) = δ_ij - softmax_j  =>  dx = g - softmax * sum(g)
        return (g - xp.exp(out) * g.sum(axis=axis, keepdims=True),)
    return Tensor._make(out, (x,), backward, "log_softmax", twin=lambda: reference.log_softmax(x, axis))
