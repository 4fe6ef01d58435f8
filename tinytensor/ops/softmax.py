"""Fused softmax and log-softmax: one forward, one hand-derived backward each.

The composed twins (built from exp, sum and division) live in the tests; these are what runs.
"""
from .. import backend
from ..tensor import Tensor


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, computed stably by subtracting the max first."""
    xp = backend.xp_of(x.data)
    out = x.data - x.data.max(axis=axis, keepdims=True)
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)

    def backward(g):  # ds_i/dx_j = s_i (δ_ij - s_j)  =>  dx = s * (g - sum(g * s))
        return (out * (g - (g * out).sum(axis=axis, keepdims=True)),)
    return Tensor._make(out, (x,), backward, "softmax")


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) along ``axis``, computed stably."""
    xp = backend.xp_of(x.data)
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g):  # d/dx_j (x_i - lse) = δ_ij - softmax_j  =>  dx = g - softmax * sum(g)
        return (g - xp.exp(out) * g.sum(axis=axis, keepdims=True),)
    return Tensor._make(out, (x,), backward, "log_softmax")
