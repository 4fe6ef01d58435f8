"""The GPT: token + position embeddings, pre-LayerNorm transformer blocks, final norm, output head.

Shapes: B batch, T tokens, E = emb_dim, H heads, D = E / H per head, V vocabulary.

    ids (B, T) -> tok_emb + pos_emb (B, T, E) -> dropout -> n_layers x Block -> final_norm -> out_head (B, T, V)

Each Block is  x = x + drop(attn(norm1(x)));  x = x + drop(mlp(norm2(x)))  (the "shortcut" connections).
"""
import math

import numpy as np

import tinytensor.functional as F
from tinytensor import backend, nn, random
from tinytensor.tensor import Tensor

from .gpt2_config import GPTConfig
from .kv_cache import KVCache


def _linear(in_features, out_features, bias=True):
    """An nn.Linear whose weights are left unset (``nn.skip_init``: no draws, no memory touched yet).

    GPT.__init__ then draws GPT-2's initialisation (or a loader fills the weights), so the layer's
    own default initialisation would only be wasted time and random draws.
    """
    return nn.skip_init(nn.Linear, in_features, out_features, bias=bias)


def _embedding(num, dim):
    """An nn.Embedding with unset weights (see ``_linear``)."""
    return nn.skip_init(nn.Embedding, num, dim)


class CausalSelfAttention(nn.Module):
    """Multi-head attention in which each position sees only itself and earlier positions."""

    def __init__(self, cfg):
        self.n_heads, self.head_dim, self.drop_rate = cfg.n_heads, cfg.head_dim, cfg.drop_rate
        self.qkv = _linear(cfg.emb_dim, 3 * cfg.emb_dim, bias=cfg.qkv_bias)   # fused query, key, value
        self.proj = _linear(cfg.emb_dim, cfg.emb_dim)

    def forward(self, x, cache=None, layer=0):
        B, T, E = x.shape
        H, D = self.n_heads, self.head_dim
        qkv = self.qkv(x).reshape(B, T, 3, H, D)              # (B, T, 3, H, D)
        qkv = qkv.transpose(2, 0, 3, 1, 4)                     # (3, B, H, T, D)
        q, k, v = qkv[0], qkv[1], qkv[2]                       # each (B, H, T, D)
        if cache is not None:
            k, v = cache.append(layer, k, v)                   # (B, H, S, D), S = cached + T
        p = self.drop_rate if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, causal=True, dropout_p=p, training=self.training)
        out = out.transpose(0, 2, 1, 3).reshape(B, T, E)       # heads side by side again (B, T, E)
        return self.proj(out)


class FeedForward(nn.Module):
    """Position-wise MLP: expand to 4E, GELU, project back to E."""

    def __init__(self, cfg):
        self.fc = _linear(cfg.emb_dim, 4 * cfg.emb_dim)
        self.proj = _linear(4 * cfg.emb_dim, cfg.emb_dim)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block with two shortcut connections."""

    def __init__(self, cfg):
        self.norm1 = nn.LayerNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)
        self.norm2 = nn.LayerNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.mlp = FeedForward(cfg)

    def forward(self, x, cache=None, layer=0):
        x = x + self.drop_shortcut(self.attn(self.norm1(x), cache, layer))
        return x + self.drop_shortcut(self.mlp(self.norm2(x)))


class LanguageModel(nn.Module):
    """What every family's model shares (GPT here, Llama and Qwen3 in gpt/models/llama.py): ids checked against
    the config, logits = out_head(features(ids)), and the KV cache generation uses. A subclass sets
    ``cfg``, ``tok_emb`` and ``out_head`` and defines ``features(ids, cache=None)``."""

    def _check_ids(self, ids, cache=None):
        """``ids`` as an integer array (B, T) that fits the config (and the cache, when given), or a
        ValueError naming the model and what is wrong."""
        name, cfg = type(self).__name__, self.cfg
        start_pos = cache.length if cache is not None else 0
        data = ids.data if isinstance(ids, Tensor) else ids
        data = backend.xp_of(data).asarray(data) if hasattr(data, "dtype") else np.asarray(data)
        if data.dtype.kind not in "iu":
            raise ValueError(f"{name}: token ids must be integers, got dtype {data.dtype}")
        if data.ndim != 2:
            raise ValueError(f"{name}: ids must have shape (batch, tokens), got shape {tuple(data.shape)}")
        T = data.shape[1]
        if T == 0:
            raise ValueError(f"{name}: ids hold no tokens")
        if start_pos + T > cfg.context_length:
            what = f"{T} tokens" if not start_pos else f"{start_pos} cached + {T} new tokens"
            raise ValueError(f"{name}: {what} exceed the context length {cfg.context_length}; "
                             "crop the input to its last context_length tokens")
        if data.size:
            low, high = int(data.min()), int(data.max())
            if low < 0 or high >= cfg.vocab_size:
                bad = low if low < 0 else high
                raise ValueError(f"{name}: token id {bad} is outside the vocabulary (0..{cfg.vocab_size - 1})")
        if cache is not None and data.shape[0] != cache.batch_size:
            raise ValueError(f"{name}: a batch of {data.shape[0]} with a KV cache made for {cache.batch_size}")
        return data

    def forward(self, ids, cache=None):
        """Logits (B, T, V) for the next token at every position."""
        return self.out_head(self.features(ids, cache))

    def new_cache(self, batch_size):
        """An empty KV cache for ``batch_size`` sequences, on this model's device and dtype."""
        w = self.tok_emb.weight
        return KVCache(self.cfg, batch_size, w.dtype, w.device)

    def num_parameters(self, trainable_only=False):
        return super().num_parameters(trainable_only)

    def extra_repr(self):
        return f"{self.num_parameters():,} parameters"


class GPT(LanguageModel):
    """A GPT-2 style language model: ``model(ids)`` maps ids (B, T) to next-token logits (B, T, V).

    ``init``: "gpt2" (default, also True) draws GPT-2's initialisation; "torch" draws PyTorch's layer
    defaults (Linear uniform in +-1/sqrt(in), Embedding N(0, 1)) as the book's code gets them;
    False leaves the weights unset (for loaders that fill every parameter anyway).
    """

    def __init__(self, cfg, init=True):
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(cfg).__name__}")
        cfg.validate()
        self.cfg = cfg
        self.tok_emb = _embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = _embedding(cfg.context_length, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = nn.LayerNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.out_head = _linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        if init:
            self.init_weights("gpt2" if init is True else init)

    def init_weights(self, style="gpt2"):
        """GPT-2's initialisation: N(0, 0.02) for weights, zero biases, LayerNorm at (1, 0), and the two
        projections that write into the shortcut scaled by 1/sqrt(2 n_layers) so the sum stays O(1).

        Draws come from the library's seeded generator (``tt.manual_seed``) in parameter order.
        ``style="torch"``: PyTorch's defaults instead (see the class docstring).
        """
        if style == "torch":
            return self._init_torch()
        if style != "gpt2":
            raise ValueError(f"GPT: init must be 'gpt2' or 'torch', got {style!r}")
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "final_norm.weight":
                p.data = np.ones(p.shape, p.dtype)
            elif name.endswith(".bias"):
                p.data = np.zeros(p.shape, p.dtype)
            else:
                std = residual_std if name.endswith(("attn.proj.weight", "mlp.proj.weight")) else 0.02
                p.data = random.normal(p.shape, p.dtype, std=std)
        return self

    def _init_torch(self):
        linears = {id(m.weight): m for m in self.modules() if isinstance(m, nn.Linear)}
        for name, p in self.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight")) or name == "final_norm.weight":
                p.data = np.ones(p.shape, p.dtype)
            elif name.endswith(("norm1.bias", "norm2.bias")) or name == "final_norm.bias":
                p.data = np.zeros(p.shape, p.dtype)
            elif name in ("tok_emb.weight", "pos_emb.weight"):
                p.data = random.normal(p.shape, p.dtype)
            else:                                   # Linear weight (out, in) or bias (out,): +-1/sqrt(in)
                owner = linears.get(id(p))
                fan_in = p.shape[1] if owner is not None else self._fan_in_of_bias(name)
                bound = 1.0 / math.sqrt(fan_in)
                p.data = (random.uniform(p.shape, dtype=np.float64) * (2 * bound) - bound).astype(p.dtype)
        return self

    def _fan_in_of_bias(self, name):
        module = self
        for part in name.split(".")[:-1]:
            module = getattr(module, part)
        return module.in_features

    # ----- forward -----
    def features(self, ids, cache=None):
        """Final-normed hidden states (B, T, E): everything but the output head.

        With a ``KVCache`` the ids are the tokens after the cached ones, and the cache grows by T.
        """
        start = cache.length if cache is not None else 0
        data = self._check_ids(ids, cache)
        xp = backend.xp_of(self.tok_emb.weight.data)
        T = data.shape[1]
        positions = xp.arange(start, start + T)
        x = F.embedding(data, self.tok_emb.weight) + F.embedding(positions, self.pos_emb.weight)  # (B, T, E)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += T
        return self.final_norm(x)
