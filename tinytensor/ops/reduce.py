"""Reductions: sum, mean, max, min and var, over all axes or the ones asked for."""
import builtins

from .. import backend
from ..tensor import Tensor
from .shape import broadcast_to


def _axes(x, axis):
    """Normalise ``axis`` (None, int or tuple) to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    n = builtins.max(x.ndim, 1)     # a 0-d tensor accepts axis 0 or -1, as in PyTorch
    out = []
    for a in axes:
        if not -n <= a < n:
            raise IndexError(f"axis {a} is out of range for a tensor of shape {x.shape}")
        out.append(a % n)
    return tuple(sorted(set(out))) if x.ndim else ()


def _expand(g, x, axes, keepdims):
    """Give a reduced gradient back its reduced axes (as size 1) so it broadcasts against ``x``."""
    if keepdims or x.ndim == 0:
        return g
    shape = list(x.shape)
    for a in axes:
        shape[a] = 1
    return g.reshape(shape)


def sum(x, axis=None, keepdims=False):
    axes = _axes(x, axis)
    xp = backend.xp_of(x.data)

    def backward(g):  # every input element contributes once: copy g back over the summed axes
        return (xp.broadcast_to(_expand(g, x, axes, keepdims), x.shape),)

    def vjp(g):  # the same in Tensor ops (what create_graph=True records)
        return (broadcast_to(_expand(g, x, axes, keepdims), x.shape),)
    return Tensor._make(x.data.sum(axis=axes, keepdims=keepdims), (x,), backward, "sum", vjp)


def mean(x, axis=None, keepdims=False):
    axes = _axes(x, axis)
    xp = backend.xp_of(x.data)
    count = 1
    for a in axes:
        count *= x.shape[a]

    def backward(g):  # d mean / dx_i = 1 / n
        return (xp.broadcast_to(_expand(g, x, axes, keepdims) / count, x.shape).astype(x.dtype, copy=False),)

    def vjp(g):
        return (broadcast_to(_expand(g, x, axes, keepdims) / count, x.shape),)
    return Tensor._make(x.data.mean(axis=axes, keepdims=keepdims), (x,), backward, "mean", vjp)


def _extreme(x, axis, keepdims, name):
    axes = _axes(x, axis)
    if x.size == 0:
        raise ValueError(f"{name}() of an empty tensor of shape {x.shape}")
    reduce = x.data.max if name == "max" else x.data.min
    out = reduce(axis=axes, keepdims=keepdims)

    def share():  # ties share the gradient equally (PyTorch's amax/amin and full max() convention)
        hit = (x.data == _expand(out, x, axes, keepdims))
        return hit / hit.sum(axis=axes, keepdims=True)

    def backward(g):
        return ((share() * _expand(g, x, axes, keepdims)).astype(x.dtype, copy=False),)

    def vjp(g):  # (the share: a constant)
        return (_expand(g, x, axes, keepdims) * share().astype(x.dtype),)
    return Tensor._make(out, (x,), backward, name, vjp)


def max(x, axis=None, keepdims=False):
    """Largest values (not indices, like NumPy). Tied maxima share the gradient equally."""
    return _extreme(x, axis, keepdims, "max")


def min(x, axis=None, keepdims=False):
    """Smallest values. Tied minima share the gradient equally."""
    return _extreme(x, axis, keepdims, "min")


def var(x, axis=None, keepdims=False):
    """Population variance (ddof=0, like NumPy): mean((x - mean(x))^2)."""
    axes = _axes(x, axis)
    count = 1
    for a in axes:
        count *= x.shape[a]
    centered = x.data - x.data.mean(axis=axes, keepdims=True)
    out = (centered * centered).mean(axis=axes, keepdims=keepdims)

    def backward(g):  # d var / dx_i = 2 (x_i - mean) / n
        return ((2.0 / count) * centered * _expand(g, x, axes, keepdims)).astype(x.dtype, copy=False),

    def vjp(g):
        return (2.0 / count) * (x - x.mean(axis=axes, keepdims=True)) * _expand(g, x, axes, keepdims),
    return Tensor._make(out, (x,), backward, "var", vjp)
