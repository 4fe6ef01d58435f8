"""GELU in the tanh form GPT-2 uses, fused: one pass forward, the derivative written out for backward.

Its composed twin: ``reference.gelu``. With c = sqrt(2/pi), u = c (x + 0.044715 x^3) and t = tanh(u):

    gelu(x) = 0.5 x (1 + t)
    d/dx    = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)      (d tanh(u)/du = 1 - t^2)

Forward keeps h = (1 + t) / 2 for backward; as 1 - t^2 = (1 + t)(1 - t) = 4 h (1 - h), the derivative is
    d/dx    = h (1 + 2 x (1 - h) c (1 + 3 * 0.044715 x^2))                 (9 passes, not 11)

The plain rung, at the top of this file: ``plain_gelu`` and ``plain_gelu_backward``
(``reference.PLAIN["gelu"]``): NumPy in and out, the backward written by hand from the formulas.
"""
import math

import numpy as np

from .. import backend, config, twins as reference
from ..cuda import kernels as cuda_kernels
from ..schedule import elementwise as schedule
from ..tensor import Tensor
from .common import floating

_C = math.sqrt(2.0 / math.pi)

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_gelu(x):
    """gelu(x) = 0.5 x (1 + t), t = tanh(c (x + 0.044715 x^3))."""
    t = np.tanh(_C * (x + 0.044715 * x ** 3))
    return 0.5 * x * (1 + t), (x, t)


def plain_gelu_backward(g, cache):
    """d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)."""
    x, t = cache
    return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _C * (1 + 3 * 0.044715 * x * x)),)


# ----- the math, in place on a block (h keeps (1 + tanh(u)) / 2 for backward) -----


def _gelu_forward(d, h, out):
    """out = d h with h = (1 + t) / 2, t = tanh(c (d + 0.044715 d^3)); u = (c 0.044715 d^2 + c) d."""
    one = d.dtype.type
    xp = backend.xp_of(d)
    xp.multiply(d, d, out=h)
    h *= one(_C * 0.044715)
    h += one(_C)
    h *= d                                        # u
    xp.tanh(h, out=h)                             # t
    h *= one(0.5)
    h += one(0.5)                                 # h = (1 + t) / 2
    xp.multiply(d, h, out=out)


def _gelu_backward(d, h, g, du):
    """du = g h (1 + 2 d (1 - h) c (1 + 3 * 0.044715 d^2))."""
    one = d.dtype.type
    xp = backend.xp_of(d)
    xp.multiply(d, d, out=du)
    du *= one(6 * _C * 0.044715)
    du += one(2 * _C)
    du *= d                                       # 2 c (1 + 3 * 0.044715 d^2) d
    du *= xp.subtract(one(1), h)                  # (1 - h): a block-sized temporary
    du += one(1)
    du *= h
    du *= g


# ----- the op (its schedule, row blocks of the arrays shared over the threads: schedule/elementwise.py) -----

def gelu(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    floating("gelu", x)
    if config.reference_ops:
        return reference.gelu(x)
    xp = backend.xp_of(x.data)
    if cuda_kernels.use(xp, "gelu_vectorized") and cuda_kernels.gelu_vectorized_supported(x.data):
        return cuda_kernels.gelu_vectorized(x)    # 16-byte loads (untested: only when switched on)
    if cuda_kernels.use(xp, "gelu"):             # one fused kernel on a GPU (the same formula)
        return cuda_kernels.gelu(x)
    d = x.data
    if d.ndim == 0:
        d = d.reshape(1)                          # 0-d: work on a 1-element view, give back 0-d below
    h = xp.empty_like(d)                          # (1 + tanh(u)) / 2, kept for backward
    out = xp.empty_like(d)
    schedule.in_row_blocks(_gelu_forward, d, h, out)

    def backward(g):
        du = xp.empty_like(d)
        schedule.in_row_blocks(_gelu_backward, d, h, g.reshape(d.shape), du)
        return (du.reshape(x.shape),)
    out = out.reshape(x.shape)
    return Tensor._make(out, (x,), backward, "gelu", twin=lambda: reference.gelu(x))
