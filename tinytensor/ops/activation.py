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
    inner = xp.asarray(d * d)                    # an array even for 0-d x (d * d is then a NumPy scalar)
    inner *= d.dtype.type(0.044715)
    inner += 1
    inner *= d
    inner *= c                                   # u = c (x + 0.044715 x^3)
    t = xp.tanh(inner, out=inner)                # t = tanh(u)
    out = t + 1
    out *= d
    out *= d.dtype.type(0.5)

    def backward(g):  # d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)
        du = d * d
        du *= d.dtype.type(3 * 0.044715)
        du += 1
        du *= c
        du *= d
        sech2 = xp.multiply(t, t, out=xp.empty_like(t))   # an array even when x is 0-d
        xp.subtract(1, sech2, out=sech2)          # 1 - t^2
        du *= sech2
        du += t
        du += 1
        du *= d.dtype.type(0.5)
        du *= g
        return (du,)
    return Tensor._make(out, (x,), backward, "gelu")
