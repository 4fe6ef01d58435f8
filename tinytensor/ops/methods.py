"""Attach the ops to Tensor as operators and methods, the way PyTorch users expect them."""
import operator

import numpy as np

from ..tensor import Tensor
from . import elementwise as E, index, matmul, reduce as R, shape as S
from .common import as_tensor


def _reflected(fn):
    return lambda self, other: fn(as_tensor(other, self), self)


Tensor.__add__ = E.add
Tensor.__radd__ = _reflected(E.add)
Tensor.__sub__ = E.sub
Tensor.__rsub__ = _reflected(E.sub)
Tensor.__mul__ = E.mul
Tensor.__rmul__ = _reflected(E.mul)
Tensor.__truediv__ = E.div
Tensor.__rtruediv__ = _reflected(E.div)
Tensor.__pow__ = E.pow
Tensor.__rpow__ = _reflected(E.pow)
Tensor.__matmul__ = matmul.matmul
Tensor.__rmatmul__ = _reflected(matmul.matmul)
Tensor.__neg__ = E.neg
Tensor.__getitem__ = index.getitem
Tensor.__lt__ = lambda a, b: E.compare(a, b, operator.lt)
Tensor.__le__ = lambda a, b: E.compare(a, b, operator.le)
Tensor.__gt__ = lambda a, b: E.compare(a, b, operator.gt)
Tensor.__ge__ = lambda a, b: E.compare(a, b, operator.ge)
Tensor.__eq__ = lambda a, b: E.compare(a, b, operator.eq)
Tensor.__ne__ = lambda a, b: E.compare(a, b, operator.ne)

for _name in ("exp", "log", "tanh", "sqrt", "relu", "sigmoid", "abs"):
    setattr(Tensor, _name, getattr(E, _name))
Tensor.__abs__ = E.abs
Tensor.masked_fill = E.masked_fill
Tensor.matmul = matmul.matmul
Tensor.sum = R.sum
Tensor.mean = R.mean
Tensor.max = R.max
Tensor.min = R.min
Tensor.var = R.var
Tensor.reshape = S.reshape
Tensor.view = S.reshape
Tensor.transpose = S.transpose
Tensor.permute = S.transpose
Tensor.swapaxes = S.swapaxes
Tensor.unsqueeze = S.unsqueeze
Tensor.squeeze = S.squeeze
Tensor.flatten = S.flatten
Tensor.split = S.split
Tensor.T = property(lambda self: S.transpose(self))


def _to(self, device_or_dtype):
    """A copy on another device ("cpu"/"cuda") or with another dtype; differentiable."""
    try:
        dtype = np.dtype(device_or_dtype) if not str(device_or_dtype).startswith(("cpu", "cuda")) else None
    except TypeError:
        dtype = None
    return E.astype(self, dtype) if dtype is not None else E.to_device(self, device_or_dtype)


def _astype(self, dtype):
    """A copy with another dtype; differentiable (the gradient is cast back)."""
    return E.astype(self, np.dtype(dtype))


Tensor.to = _to
Tensor.astype = _astype


def _softmax(self, axis=-1):
    from .softmax import softmax
    return softmax(self, axis)


Tensor.softmax = _softmax
