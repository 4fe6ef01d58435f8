"""Ops that move elements around without changing them: reshape, transpose, concatenate, stack, split."""
import numpy as np

from .. import backend
from ..tensor import Tensor
from .common import unbroadcast


def reshape(x, *shape):
    """The same elements in a new shape (one axis may be -1)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        out = x.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot view a tensor of shape {x.shape} ({x.size} elements) as {shape}") from None

    def backward(g):  # reshaping back undoes it
        return (g.reshape(x.shape),)
    return Tensor._make(out, (x,), backward, "reshape", vjp=backward)


def transpose(x, *axes):
    """Permute the axes (like NumPy): ``x.transpose(0, 2, 1)``; no axes reverses them all."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if not axes:
        axes = tuple(reversed(range(x.ndim)))
    if any(not -x.ndim <= a < max(x.ndim, 1) for a in axes) or \
            sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: {axes} is not a permutation of the axes of a tensor of shape {x.shape}")
    inverse = tuple(np.argsort([a % x.ndim for a in axes]))

    def backward(g):  # apply the inverse permutation
        return (g.transpose(inverse),)
    return Tensor._make(x.data.transpose(axes), (x,), backward, "transpose", vjp=backward)


def broadcast_to(x, shape):
    """``x`` repeated along new leading axes and axes of size 1, as NumPy broadcasts it to ``shape``."""
    xp = backend.xp_of(x.data)

    def backward(g):  # every copy sends its gradient back: summed
        return (unbroadcast(g, x.shape),)
    return Tensor._make(xp.broadcast_to(x.data, shape), (x,), backward, "broadcast_to", vjp=backward)


def swapaxes(x, a, b):
    """Exchange two axes."""
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, *axes)


def unsqueeze(x, axis):
    """Insert an axis of size 1 at ``axis``."""
    axis = axis % (x.ndim + 1)
    return reshape(x, *x.shape[:axis], 1, *x.shape[axis:])


def squeeze(x, axis=None):
    """Remove axes of size 1 (all of them, or the one given)."""
    if axis is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        if not -max(x.ndim, 1) <= axis < max(x.ndim, 1):
            raise IndexError(f"squeeze: axis {axis} is out of range for a tensor of shape {x.shape}")
        if x.ndim == 0:
            return reshape(x)
        axis = axis % x.ndim
        if x.shape[axis] != 1:
            raise ValueError(f"squeeze: axis {axis} of shape {x.shape} has size {x.shape[axis]}, not 1")
        shape = x.shape[:axis] + x.shape[axis + 1:]
    return reshape(x, *shape)


def flatten(x, start_axis=0):
    """Merge axes from ``start_axis`` on into one."""
    return reshape(x, *x.shape[:start_axis], -1)


def _same_kind(tensors, name):
    from .common import as_tensor
    if not tensors:
        raise ValueError(f"{name}: needs at least one tensor")
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    if like is None:
        raise TypeError(f"{name}: needs tensors, got {type(tensors[0]).__name__}")
    tensors = [t if isinstance(t, Tensor) else as_tensor(t, like) for t in tensors]
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: tensors of different dtypes {sorted(map(str, dtypes))}")
    if len({t.device for t in tensors}) > 1:
        raise RuntimeError(f"{name}: tensors on different devices; move them with .to()")
    return tensors


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = _same_kind(list(tensors), "concatenate")
    xp = backend.xp_of(tensors[0].data)
    try:
        out = xp.concatenate([t.data for t in tensors], axis=axis)
    except (ValueError, np.exceptions.AxisError) as exc:
        raise ValueError(f"concatenate: shapes {[t.shape for t in tensors]} along axis {axis}: {exc}") from None
    edges = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def backward(g):  # each input gets back its own slice
        return tuple(xp.split(g, edges, axis=axis))

    def vjp(g):  # the same in Tensor ops (what create_graph=True records)
        return tuple(split(g, [t.shape[axis] for t in tensors], axis))
    return Tensor._make(out, tuple(tensors), backward, "concatenate", vjp)


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis."""
    tensors = _same_kind(list(tensors), "stack")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}")
    return concatenate([unsqueeze(t, axis % (tensors[0].ndim + 1)) for t in tensors], axis=axis)


def split(x, size_or_sizes, axis=0):
    """Cut ``x`` along ``axis``: an int is each chunk's size (the last may be smaller, as in PyTorch);
    a list gives every chunk's size and must add up to the axis length."""
    n = x.shape[axis]
    if isinstance(size_or_sizes, int):
        if size_or_sizes <= 0:
            raise ValueError(f"split: chunk size must be positive, got {size_or_sizes}")
        sizes = [size_or_sizes] * (n // size_or_sizes) + ([n % size_or_sizes] if n % size_or_sizes else [])
    else:
        sizes = list(size_or_sizes)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but axis {axis} has length {n}")
    from .index import getitem
    pieces, start = [], 0
    for size in sizes:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, start + size)
        pieces.append(getitem(x, tuple(index)))
        start += size
    return pieces
