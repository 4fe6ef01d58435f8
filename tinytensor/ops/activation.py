"""GELU in the tanh form GPT-2 uses, fused: one pass forward, the derivative written out for backward."""
import math

from .. import backend, cuda_kernels
from ..tensor import Tensor

_C = math.sqrt(2.0 / math.pi)


def gelu(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    xp = backend.xp_of(x.data)
    if cuda_kernels.use(xp, "gelu"):             # one fused kernel on a GPU (the same formula)
        return cuda_kernels.gelu(x)
    d = x.data
    c = d.dtype.type(_C)
    one = d.dtype.type
    inner = xp.multiply(d, d, out=xp.empty_like(d))   # an array even for 0-d x
    inner *= one(_C * 0.044715)
    inner += c
    inner *= d                                   # u = c (x + 0.044715 x^3), constants folded
    t = xp.tanh(inner, out=inner)                # t = tanh(u)
    out = t + 1
    out *= d
    out *= one(0.5)

    def backward(g):  # d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)
        du = xp.multiply(d, d, out=xp.empty_like(d))
        du *= one(3 * _C * 0.044715)
        du += c
        du *= d                                   # c (1 + 3 * 0.044715 x^2) x, constants folded
        sech2 = xp.multiply(t, t, out=xp.empty_like(t))   # an array even when x is 0-d
        xp.subtract(1, sech2, out=sech2)          # 1 - t^2
        du *= sech2
        du += t
        du += 1
        du *= one(0.5)
        du *= g
        return (du,)
    return Tensor._make(out, (x,), backward, "gelu")
