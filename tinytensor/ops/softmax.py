"""Fused softmax and log-softmax: one forward, one hand-derived backward each.

Their composed twins (exp, sum and division): ``reference.softmax`` and ``reference.log_softmax``.
"""
from .. import amp, backend, config, reference
from ..tensor import Tensor


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, computed stably by subtracting the max first."""
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
    (x,) = amp.high("log_softmax", x)                           # float32 inside tt.autocast
    if config.reference_ops:
        return reference.log_softmax(x, axis)
    xp = backend.xp_of(x.data)
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g):  # d/dx_j (x_i - lse) = δ_ij - softmax_j  =>  dx = g - softmax * sum(g)
        return (g - xp.exp(out) * g.sum(axis=axis, keepdims=True),)
    return Tensor._make(out, (x,), backward, "log_softmax", twin=lambda: reference.log_softmax(x, axis))
