"""The standard layers: Linear, Embedding, LayerNorm, Dropout, activations and containers."""
import math

import numpy as np

from .. import random
from ..ops import activation, dropout, elementwise, embedding, linear, norm
from .init import new_parameter
from .module import Module


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features), as in PyTorch.

    Initialised uniformly in ±1/sqrt(in_features), like PyTorch's default (``nn.skip_init`` skips it).
    """

    def __init__(self, in_features, out_features, bias=True, device="cpu", dtype=np.float32):
        bound = 1.0 / math.sqrt(in_features)

        def uniform(*shape):
            return random.generator().uniform(-bound, bound, shape).astype(dtype)
        self.weight = new_parameter((out_features, in_features), dtype, device,
                                    lambda: uniform(out_features, in_features))
        self.bias = new_parameter((out_features,), dtype, device, lambda: uniform(out_features)) if bias else None
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x):
        return linear.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A table of ``num`` vectors of size ``dim``; ``layer(ids)`` looks rows up. Initialised N(0, 1)."""

    def __init__(self, num, dim, device="cpu", dtype=np.float32):
        self.weight = new_parameter((num, dim), dtype, device, lambda: random.normal((num, dim), np.dtype(dtype)))
        self.num, self.dim = num, dim

    def forward(self, ids):
        return embedding.embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num}, {self.dim}"


class LayerNorm(Module):
    """Normalise the last axis to mean 0, variance 1, then scale and shift (weight 1, bias 0 at start)."""

    def __init__(self, dim, eps=1e-5, device="cpu", dtype=np.float32):
        self.weight = new_parameter((dim,), dtype, device, lambda: np.ones(dim, dtype=dtype))
        self.bias = new_parameter((dim,), dtype, device, lambda: np.zeros(dim, dtype=dtype))
        self.dim, self.eps = dim, eps

    def forward(self, x):
        return norm.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}"


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode; the identity in eval mode."""

    def __init__(self, p=0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return dropout.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    """GELU, tanh form."""

    def forward(self, x):
        return activation.gelu(x)


class ReLU(Module):
    def forward(self, x):
        return elementwise.relu(x)


class Tanh(Module):
    def forward(self, x):
        return elementwise.tanh(x)


class ModuleList(Module):
    """A list of modules whose parameters are registered (names "0", "1", ...)."""

    def __init__(self, modules=()):
        modules = list(modules)
        for i, m in enumerate(modules):
            setattr(self, str(i), m)
        self._n = len(modules)

    def append(self, module):
        setattr(self, str(self._n), module)
        self._n += 1
        return self

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [getattr(self, str(j)) for j in range(self._n)[i]]
        if not -self._n <= i < self._n:
            raise IndexError(f"ModuleList index {i} out of range for {self._n} modules")
        return getattr(self, str(i % self._n))

    def __len__(self):
        return self._n

    def __iter__(self):
        return (getattr(self, str(i)) for i in range(self._n))


class Sequential(ModuleList):
    """Modules applied one after another."""

    def __init__(self, *modules):
        super().__init__(list(modules))

    def forward(self, x):
        for m in self:
            x = m(x)
        return x
