"""Dropout: zero each element with probability p in training, scale the rest by 1 / (1 - p)."""
from .. import backend, random
from ..tensor import Tensor


def dropout(x, p=0.5, training=True):
    """Inverted dropout; the identity when not training or p == 0."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    xp = backend.xp_of(x.data)
    if p == 1.0:
        mask = xp.zeros(x.shape, dtype=x.dtype)
    else:
        mask = random.uniform(x.shape, device=x.device, dtype=x.dtype) >= p
        mask = mask.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))

    def backward(g):  # kept elements pass g through with the same scale
        return (g * mask,)
    return Tensor._make(x.data * mask, (x,), backward, "dropout", vjp=backward)


def dropout_mask(shape, p, dtype, device):
    """A scaled keep-mask like the one ``dropout`` draws (used by attention)."""
    xp = backend.xp_for(device)
    if p >= 1.0:
        return xp.zeros(shape, dtype=dtype)
    keep = random.uniform(shape, device=device, dtype=dtype) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))
