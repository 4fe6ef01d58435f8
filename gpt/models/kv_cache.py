"""The KV cache: what generation keeps of every layer's keys and values, so each step feeds only new tokens."""
import numpy as np

from tinytensor import backend
from tinytensor.tensor import Tensor


class KVCache:
    """The keys and values every layer has computed so far, so generation feeds only new tokens.

    ``keys[i]`` / ``values[i]`` are buffers (B, H_kv, capacity, D) for layer i, H_kv the model's key/value
    heads (``cfg.n_kv_heads``: all heads in GPT-2, fewer with grouped-query attention); the first
    ``length`` positions are filled. A buffer starts at ``START`` positions and doubles when full, up to
    the context length, so a model of 128k positions does not reserve them all for a short prompt.
    For inference only (use under ``tt.no_grad()``).
    """
    START = 256

    def __init__(self, cfg, batch_size, dtype=np.float32, device="cpu"):
        self.xp = backend.xp_for(device)
        self.shape = (batch_size, cfg.n_kv_heads, min(self.START, cfg.context_length), cfg.head_dim)
        self.keys = [self.xp.zeros(self.shape, dtype) for _ in range(cfg.n_layers)]
        self.values = [self.xp.zeros(self.shape, dtype) for _ in range(cfg.n_layers)]
        self.batch_size, self.capacity, self.length = batch_size, cfg.context_length, 0

    def append(self, layer, k, v):
        """Store new keys/values (B, H_kv, T_new, D) after the cached ones; return all (B, H_kv, S, D) as tensors."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.keys[layer].shape[2]:
            self._grow(layer, end)
        self.keys[layer][:, :, start:end] = k.data
        self.values[layer][:, :, start:end] = v.data
        return Tensor._plain(self.keys[layer][:, :, :end]), Tensor._plain(self.values[layer][:, :, :end])

    def _grow(self, layer, end):
        if end > self.capacity:
            raise ValueError(f"KVCache: {end} positions exceed the context length {self.capacity}")
        size = min(self.capacity, max(end, 2 * self.keys[layer].shape[2]))
        for buffers in (self.keys, self.values):
            old = buffers[layer]
            buffers[layer] = self.xp.zeros(old.shape[:2] + (size,) + old.shape[3:], old.dtype)
            buffers[layer][:, :, :self.length] = old[:, :, :self.length]

    def reset(self):
        self.length = 0
