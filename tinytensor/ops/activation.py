"""GELU in the tanh form GPT-2 uses, fused: one pass forward, the derivative written out for backward.

Its composed twin: ``reference.gelu``. With c = sqrt(2/pi), u = c (x + 0.044715 x^3) and t = tanh(u):

    gelu(x) = 0.5 x (1 + t)
    d/dx    = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)      (d tanh(u)/du = 1 - t^2)
"""
import math

from .. import backend, config, cuda_kernels, parallel, reference
from ..tensor import Tensor

_C = math.sqrt(2.0 / math.pi)

# ----- the math, in place on a block (t keeps tanh(u) for backward) -----


def _gelu_forward(d, t, out):
    """out = 0.5 d (1 + t), t = tanh(c (d + 0.044715 d^3)), the constants folded: u = (c 0.044715 d^2 + c) d."""
    one = d.dtype.type
    xp = backend.xp_of(d)
    xp.multiply(d, d, out=t)
    t *= one(_C * 0.044715)
    t += one(_C)
    t *= d                                        # u
    xp.tanh(t, out=t)
    xp.add(t, 1, out=out)
    out *= d
    out *= one(0.5)


def _gelu_backward(d, t, g, du):
    """du = g (0.5 (1 + t) + 0.5 d (1 - t^2) c (1 + 3 * 0.044715 d^2))."""
    one = d.dtype.type
    xp = backend.xp_of(d)
    xp.multiply(d, d, out=du)
    du *= one(3 * _C * 0.044715)
    du += one(_C)
    du *= d                                       # c (1 + 3 * 0.044715 d^2) d
    sech2 = t * t
    xp.subtract(1, sech2, out=sech2)             # 1 - t^2
    du *= sech2
    du += t
    du += 1
    du *= one(0.5)
    du *= g


# ----- the op; its schedule: row blocks of the arrays shared over the threads -----

def _rows(a):
    """A 2-D (rows, last axis) view of ``a`` (a copy only when ``a`` is not contiguous)."""
    return a.reshape(-1, a.shape[-1])


def gelu(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
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
    t = xp.empty_like(d)                          # tanh(u), kept for backward
    out = xp.empty_like(d)
    parallel.for_row_blocks(_gelu_forward, _rows(d), _rows(t), _rows(out))

    def backward(g):
        du = xp.empty_like(d)
        parallel.for_row_blocks(_gelu_backward, _rows(d), _rows(t), _rows(g.reshape(d.shape)), _rows(du))
        return (du.reshape(x.shape),)
    out = out.reshape(x.shape)
    return Tensor._make(out, (x,), backward, "gelu")
