"""Functions that make new tensors: zeros, ones, full, randn, rand, arange, and *_like."""
import numpy as np

from . import backend, random
from .tensor import Tensor


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def zeros(*shape, dtype=np.float32, requires_grad=False, device="cpu"):
    """A tensor of zeros: ``tt.zeros(2, 3)`` or ``tt.zeros((2, 3))``."""
    return Tensor._plain(backend.xp_for(device).zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False, device="cpu"):
    """A tensor of ones."""
    return Tensor._plain(backend.xp_for(device).ones(_shape(shape), dtype=dtype), requires_grad)


def full(shape, value, dtype=np.float32, requires_grad=False, device="cpu"):
    """A tensor filled with ``value``."""
    return Tensor._plain(backend.xp_for(device).full(_shape((shape,)), value, dtype=dtype), requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False, device="cpu"):
    """Standard normal draws from the library's seeded generator (see ``tt.manual_seed``)."""
    return Tensor._plain(random.normal(_shape(shape), np.dtype(dtype), device), requires_grad)


def rand(*shape, dtype=np.float32, requires_grad=False, device="cpu"):
    """Uniform draws in [0, 1)."""
    return Tensor._plain(random.uniform(_shape(shape), device, np.dtype(dtype)), requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False, device="cpu"):
    """Evenly spaced values, like ``np.arange``; integers stay int64, floats are float32 by default."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in (start, stop, step)) else np.float32
    return Tensor._plain(backend.xp_for(device).arange(start, stop, step, dtype=dtype), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor._plain(backend.xp_of(t.data).zeros(t.shape, dtype=dtype or t.dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor._plain(backend.xp_of(t.data).ones(t.shape, dtype=dtype or t.dtype), requires_grad)
