"""The layers Llama and Qwen add to GPT-2's: RMSNorm and SiLU (the rest is Linear and Embedding)."""
import numpy as np

from ..ops import rmsnorm, swiglu
from .init import new_parameter
from .module import Module


class RMSNorm(Module):
    """Divide the last axis by its root mean square, then scale (weight 1 at start, no bias), as in PyTorch."""

    def __init__(self, dim, eps=1e-6, device="cpu", dtype=np.float32):
        self.weight = new_parameter((dim,), dtype, device, lambda: np.ones(dim, dtype=dtype))
        self.dim, self.eps = dim, eps

    def forward(self, x):
        return rmsnorm.rms_norm(x, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}"


class SiLU(Module):
    """x sigmoid(x)."""

    def forward(self, x):
        return swiglu.silu(x)
