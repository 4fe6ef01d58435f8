"""Llama 3 and Qwen3: GPT-2's decoder with four ideas changed, on the same engine and the same loops.

Shapes: B batch, T tokens, E = emb_dim, H query heads, H_kv key/value heads, D = head_dim, V vocabulary.

    ids (B, T) -> tok_emb (B, T, E) -> n_layers x LlamaBlock -> final_norm (RMSNorm) -> out_head (B, T, V)

What changed since GPT-2 (gpt/models/gpt2.py), idea by idea (docs/families.md walks through them):

    GPT-2                                 Llama 3                                Qwen3
    learned position table, added once    RoPE: q and k turned by their position  RoPE (theta 1e6)
    LayerNorm (centre, scale, shift)      RMSNorm (scale only)                    RMSNorm
    H heads of keys and values            GQA: H_kv < H heads, shared in groups   GQA
                                                                                  + RMSNorm on each q and k head
    MLP proj(gelu(fc x)), 4E wide         SwiGLU proj(silu(gate x) * up x)        SwiGLU
    biases in every Linear                no biases                               no biases

The model's parts keep GPT's names (tok_emb, blocks[i].norm1 / attn.qkv / attn.proj / norm2 / mlp.fc /
mlp.proj, final_norm, out_head), so generation, training, checkpoints, fine-tuning and LoRA treat the three
families alike. ``attn.qkv`` is q, k and v's projections stacked ((H + 2 H_kv) D rows); ``mlp.fc`` is the
SwiGLU's gate and up stacked (2 * hidden_dim rows): one matrix product each, as GPT's fused qkv.
"""
import math

import numpy as np

import tinytensor.functional as F
from tinytensor import backend, nn, random

from .llama_config import LlamaConfig, Qwen3Config
from .gpt2 import LanguageModel, _embedding, _linear


class Rotary:
    """The cos and sin tables of RoPE (``F.rope_tables``), made once per device and dtype for the longest
    stretch of positions asked so far (at least 256, doubled as needed, at most the context length)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._tables = {}

    def tables(self, start, T, like):
        """cos and sin (T, D/2) of positions start .. start + T - 1, on ``like``'s device and dtype."""
        key = (backend.device_of(like), like.dtype.str)
        cos, sin = self._tables.get(key, (None, None))
        if cos is None or cos.shape[0] < start + T:
            have = cos.shape[0] if cos is not None else 0
            n = min(self.cfg.context_length, max(start + T, 2 * have, 256))
            cos, sin = F.rope_tables(self.cfg.head_dim, n, self.cfg.rope_theta, self.cfg.rope_scaling,
                                     dtype=like.dtype, device=backend.device_of(like))
            self._tables[key] = cos, sin
        return cos[start:start + T], sin[start:start + T]


class GroupedQueryAttention(nn.Module):
    """Causal attention with RoPE on q and k, H_kv key/value heads for H query heads, and (Qwen3) RMSNorm
    on each head's queries and keys."""

    def __init__(self, cfg):
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.drop_rate = cfg.drop_rate
        self.qkv = _linear(cfg.emb_dim, cfg.q_dim + 2 * cfg.kv_dim, bias=False)    # q, k, v stacked
        self.proj = _linear(cfg.q_dim, cfg.emb_dim, bias=False)
        self.qk_norm = cfg.qk_norm
        if cfg.qk_norm:
            self.q_norm = nn.skip_init(nn.RMSNorm, cfg.head_dim, eps=cfg.norm_eps)
            self.k_norm = nn.skip_init(nn.RMSNorm, cfg.head_dim, eps=cfg.norm_eps)

    def forward(self, x, cos, sin, cache=None, layer=0):
        B, T, _ = x.shape
        H, H_kv, D = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.qkv(x).reshape(B, T, H + 2 * H_kv, D)
        q, k, v = qkv.split([H, H_kv, H_kv], axis=2)          # (B, T, H | H_kv | H_kv, D)
        if self.qk_norm:                                        # Qwen3: each head's vector to unit RMS
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = cos[:, None], sin[:, None]                   # (T, 1, D/2): the same angle for every head
        q, k = F.rope(q, cos, sin), F.rope(k, cos, sin)         # positions enter here, in every layer
        q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))  # (B, heads, T, D)
        if cache is not None:
            k, v = cache.append(layer, k, v)                    # (B, H_kv, S, D): only the kv heads are kept
        p = self.drop_rate if self.training else 0.0
        # grouped-query attention: k, v hold H_kv heads, each read by H / H_kv query heads (no copies)
        out = F.scaled_dot_product_attention(q, k, v, causal=True, dropout_p=p, training=self.training)  # (B, H, T, D)
        return self.proj(out.transpose(0, 2, 1, 3).reshape(B, T, H * D))


class SwiGLUFeedForward(nn.Module):
    """proj(silu(gate x) * up x): ``fc`` holds gate and up stacked, hidden_dim rows each."""

    def __init__(self, cfg):
        self.fc = _linear(cfg.emb_dim, 2 * cfg.hidden_dim, bias=False)
        self.proj = _linear(cfg.hidden_dim, cfg.emb_dim, bias=False)

    def forward(self, x):
        return self.proj(F.swiglu(self.fc(x)))


class LlamaBlock(nn.Module):
    """Pre-RMSNorm block with GPT's two shortcut connections."""

    def __init__(self, cfg):
        self.norm1 = nn.skip_init(nn.RMSNorm, cfg.emb_dim, eps=cfg.norm_eps)
        self.attn = GroupedQueryAttention(cfg)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)
        self.norm2 = nn.skip_init(nn.RMSNorm, cfg.emb_dim, eps=cfg.norm_eps)
        self.mlp = SwiGLUFeedForward(cfg)

    def forward(self, x, cos, sin, cache=None, layer=0):
        x = x + self.drop_shortcut(self.attn(self.norm1(x), cos, sin, cache, layer))
        return x + self.drop_shortcut(self.mlp(self.norm2(x)))


class Llama(LanguageModel):
    """A Llama-3-style language model (and, given a Qwen3Config, a Qwen3): ``model(ids)`` maps ids (B, T)
    to next-token logits (B, T, V), with GPT's interface (``features``, ``new_cache``, ``cfg``).

    ``init``: "gpt2" (default, also True): N(0, 0.02) weights, the projections into the shortcut scaled
    by 1/sqrt(2 n_layers), norms at 1, as GPT; "torch": PyTorch's layer defaults; False: unset (loaders).
    """

    def __init__(self, cfg, init=True):
        if not isinstance(cfg, LlamaConfig):
            raise TypeError(f"{type(self).__name__} needs a LlamaConfig or Qwen3Config, got {type(cfg).__name__}")
        cfg.validate()
        self.cfg = cfg
        self.tok_emb = _embedding(cfg.vocab_size, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.blocks = nn.ModuleList([LlamaBlock(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = nn.skip_init(nn.RMSNorm, cfg.emb_dim, eps=cfg.norm_eps)
        self.out_head = _linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        self.rotary = Rotary(cfg)
        if init:
            self.init_weights("gpt2" if init is True else init)

    def init_weights(self, style="gpt2"):
        """Draw every weight (see the class docstring), from the library's seeded generator in parameter order."""
        if style not in ("gpt2", "torch"):
            raise ValueError(f"{type(self).__name__}: init must be 'gpt2' or 'torch', got {style!r}")
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if p.ndim == 1:                                     # every 1-d parameter is a norm's scale
                p.data = np.ones(p.shape, p.dtype)
            elif style == "torch" and name == "tok_emb.weight":
                p.data = random.normal(p.shape, p.dtype)
            elif style == "torch":                              # Linear (out, in): uniform in +-1/sqrt(in)
                bound = 1.0 / math.sqrt(p.shape[1])
                p.data = (random.uniform(p.shape, dtype=np.float64) * (2 * bound) - bound).astype(p.dtype)
            else:
                std = residual_std if name.endswith(("attn.proj.weight", "mlp.proj.weight")) else 0.02
                p.data = random.normal(p.shape, p.dtype, std=std)
        return self

    def features(self, ids, cache=None):
        """Final-normed hidden states (B, T, E); with a KVCache the ids follow the cached ones."""
        start = cache.length if cache is not None else 0
        data = self._check_ids(ids, cache)
        T = data.shape[1]
        x = self.drop(F.embedding(data, self.tok_emb.weight))              # (B, T, E): no position table
        cos, sin = self.rotary.tables(start, T, self.tok_emb.weight.data)  # (T, D/2) of positions start..
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, i)
        if cache is not None:
            cache.length += T
        return self.final_norm(x)


class Qwen3(Llama):
    """A Qwen3 model: Llama with RMSNorm on each query and key head (``Qwen3Config`` turns qk_norm on)."""

    def __init__(self, cfg, init=True):
        if not isinstance(cfg, Qwen3Config):
            raise TypeError(f"Qwen3 needs a Qwen3Config, got {type(cfg).__name__}")
        super().__init__(cfg, init)


def param_shapes(cfg, classes=None):
    """{name: shape} of every parameter of ``Llama(cfg)`` (a classifier's head of ``classes`` rows when
    given), without building the model: what a weights file must hold."""
    E, D = cfg.emb_dim, cfg.head_dim
    shapes = {"tok_emb.weight": (cfg.vocab_size, E)}
    for i in range(cfg.n_layers):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (E,), b + "attn.qkv.weight": (cfg.q_dim + 2 * cfg.kv_dim, E),
                       b + "attn.proj.weight": (E, cfg.q_dim)})
        if cfg.qk_norm:
            shapes.update({b + "attn.q_norm.weight": (D,), b + "attn.k_norm.weight": (D,)})
        shapes.update({b + "norm2.weight": (E,), b + "mlp.fc.weight": (2 * cfg.hidden_dim, E),
                       b + "mlp.proj.weight": (E, cfg.hidden_dim)})
    shapes["final_norm.weight"] = (E,)
    if classes is not None:
        shapes.update({"out_head.weight": (classes, E), "out_head.bias": (classes,)})
    elif not cfg.tie_weights:
        shapes["out_head.weight"] = (cfg.vocab_size, E)
    return shapes
