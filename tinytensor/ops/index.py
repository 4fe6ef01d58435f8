"""Indexing: ``x[index]`` with basic slicing and integer (or boolean) array indexing."""
import numpy as np

from .. import backend
from ..cuda import kernels as cuda_kernels
from ..tensor import SliceGrad, Tensor


def _plain_index(index, xp):
    """Replace tensors and lists inside an index with arrays; report whether any advanced index is used."""
    parts = index if isinstance(index, tuple) else (index,)
    out, advanced = [], False
    for part in parts:
        if isinstance(part, Tensor):
            if xp is np and part.device != "cpu":
                raise RuntimeError(f"index: an index tensor on {part.device} for data on cpu (different devices); "
                                   "move it with .to('cpu')")
            part = part.data
        if isinstance(part, list) or (xp is not np and type(part) is np.ndarray):
            part = xp.asarray(part)     # index arrays go where the data is (a host array onto the GPU)
        if hasattr(part, "dtype") and getattr(part, "ndim", 0) >= 0 and not isinstance(part, (int, slice)):
            if part.dtype.kind not in "biu":
                raise IndexError(f"index arrays must be integers or booleans, not {part.dtype}")
            advanced = advanced or part.ndim > 0 or part.dtype.kind == "b"
        out.append(part)
    return tuple(out), advanced


def getitem(x, index):
    """Select elements. Repeated integer indices pick an element twice and their gradients add up."""
    xp = backend.xp_of(x.data)
    index, advanced = _plain_index(index, xp)
    try:
        out = x.data[index]
    except IndexError as exc:
        raise IndexError(f"index into a tensor of shape {x.shape}: {exc}") from None
    if advanced:
        out = out.copy()   # fancy indexing already copies; make that explicit for CuPy too

    def backward(g):  # scatter g back to where each element came from; repeats accumulate
        if not advanced:        # one region: the engine adds it into x's gradient (laid out like x) directly
            return (SliceGrad(x.data, index, g),)
        return (_scatter_add(xp, x.shape, index, g),)
    return Tensor._make(out, (x,), backward, "getitem", vjp=lambda g: (scatter(g, index, x.shape),))


def _scatter_add(xp, shape, index, g):
    """Zeros of ``shape`` with ``g`` added in at ``index`` (a repeated index adds twice)."""
    grad = xp.zeros(shape, dtype=g.dtype)
    cuda_kernels.scatter_add(xp, grad, index, g) if xp is not np else np.add.at(grad, index, g)
    return grad


def scatter(g, index, shape):
    """``getitem``'s backward as an op (for ``create_graph=True``): zeros of ``shape`` with ``g`` added in at
    ``index``; its own backward is ``getitem`` again."""
    def backward(gg):  # each element of g went to one place: read it back from there
        return (gg[index],)
    out = _scatter_add(backend.xp_of(g.data), shape, index, g.data)
    return Tensor._make(out, (g,), backward, "scatter", vjp=backward)
