"""Helpers every op family shares: turning operands into tensors and summing gradients back to shape."""
import numpy as np

from .. import amp, backend
from ..tensor import Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` back to ``shape``: undo NumPy broadcasting for the gradient of a broadcast input.

    Broadcasting copies an input along new leading axes and along axes of size 1, so its gradient is
    the sum over those copies.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def row_dots(a, b):
    """a_i . b_i along the last axis for every row i, in one read of both (no product array is made)."""
    xp = backend.xp_of(a)
    return xp.vecdot(a, b) if hasattr(xp, "vecdot") else xp.einsum("...d,...d->...", a, b)


def as_tensor(value, like):
    """``value`` as a Tensor; plain numbers take ``like``'s dtype so float32 stays float32 (NEP 50)."""
    if isinstance(value, Tensor):
        return value
    xp = backend.xp_of(like.data)
    if isinstance(value, (bool, int, float, np.generic)) or (hasattr(value, "ndim") and value.ndim == 0):
        dtype = like.dtype if like.dtype.kind == "f" else np.result_type(like.dtype, value)
        return Tensor._plain(xp.asarray(value, dtype=dtype))
    if isinstance(value, (list, tuple)) or hasattr(value, "dtype"):
        array = xp.asarray(value)
        if array.dtype.kind == "f" and like.dtype.kind == "f":
            array = array.astype(like.dtype, copy=False)
        return Tensor._plain(array)
    raise TypeError(f"cannot combine a tensor with {type(value).__name__}")


def operands(a, b, op):
    """Two tensors of one dtype and one device for a binary op, or a clear error."""
    a = as_tensor(a, b) if not isinstance(a, Tensor) else a
    b = as_tensor(b, a)
    if a.device != b.device:
        raise RuntimeError(f"{op}: tensors on different devices ({a.device} and {b.device}); move one with .to()")
    a, b = amp.promote(a, b)           # inside tt.autocast a 16-bit float meets a wider one in the wider
    if a.dtype != b.dtype:
        ka, kb = a.dtype.kind, b.dtype.kind
        if ka == "f" and kb == "f":
            raise TypeError(f"{op}: mixing {a.dtype} and {b.dtype}; convert one with .astype() first")
        if ka == "f":
            b = Tensor._plain(b.data.astype(a.dtype))
        elif kb == "f":
            a = Tensor._plain(a.data.astype(b.dtype))
    return a, b


def same_device(op, *tensors):
    """A RuntimeError naming ``op`` when the given tensors (None skipped) live on different devices."""
    devices = {t.device for t in tensors if isinstance(t, Tensor)}
    if len(devices) > 1:
        raise RuntimeError(f"{op}: tensors on different devices ({' and '.join(sorted(devices))}); "
                           "move them to one device with .to()")


def broadcast_shape(a, b, op):
    """The broadcast shape of two tensors, or a ValueError naming the op and both shapes."""
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


def floating(op, *tensors):
    """Refuse an input that is not floating point (None is skipped): a fused op would give zeros or a raw
    NumPy casting error on integers."""
    for t in tensors:
        if t is not None and hasattr(t, "dtype") and t.dtype.kind != "f":
            raise TypeError(f"{op}: needs a floating-point tensor, got {t.dtype}; convert it first "
                            "(x.astype(np.float32))")


def nonempty_axis(op, x, axis):
    """Refuse normalising over an axis of length 0 (there is nothing to normalise)."""
    if x.ndim and -x.ndim <= axis < x.ndim and x.shape[axis] == 0:
        raise ValueError(f"{op}: axis {axis} has length 0 (input of shape {tuple(x.shape)}); there is nothing "
                         "to normalise over")
