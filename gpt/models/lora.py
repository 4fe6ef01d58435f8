"""LoRA: low-rank adapters on chosen Linear layers (Hu et al., 2021).

A frozen layer y = x W^T + b gets a trainable detour of rank r:

    y = x W^T + b + (alpha / r) * (x A^T) B^T        A: (r, in), B: (out, r)

A starts random and B starts at zero, so the adapted model begins exactly where the base model is;
only A and B (r * (in + out) numbers per layer instead of in * out) are trained. For export the
detour folds back into one plain weight: W' = W + (alpha / r) * B A.

    from gpt import lora
    names = lora.apply_lora(model, rank=8, alpha=16)     # wraps every Linear inside model.blocks
    lora.mark_trainable(model, ["out_head"])             # freeze all but the adapters (+ named extras)
    print(lora.count_parameters(model))                  # (trainable, total)
    lora.merge_lora(model)                               # back to plain Linear layers
"""
import math

import numpy as np

import tinytensor.functional as F
from tinytensor import nn, random

DEFAULT_TARGETS = ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")


class LoRALinear(nn.Module):
    """A Linear layer plus a low-rank adapter. Keeps the base layer's ``weight`` and ``bias`` under
    the same names (so a base state dict still loads) and adds ``lora_A`` and ``lora_B``."""

    def __init__(self, base, rank=8, alpha=16.0, dropout=0.0):
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"LoRA rank must be a whole number >= 1, got {rank!r}")
        self.weight, self.bias = base.weight, base.bias                    # (out, in), (out,) or None
        self.in_features, self.out_features = base.in_features, base.out_features
        check_rank(rank, self.in_features, self.out_features)
        self.rank, self.alpha, self.scale = int(rank), float(alpha), float(alpha) / int(rank)
        dtype, device = self.weight.dtype, self.weight.device
        bound = 1.0 / math.sqrt(self.in_features)                          # PyTorch's kaiming_uniform(a=sqrt(5))
        a = random.generator().uniform(-bound, bound, (self.rank, self.in_features)).astype(dtype)
        self.lora_A = nn.Parameter(a, dtype=dtype, device=device)                                  # (r, in)
        self.lora_B = nn.Parameter(np.zeros((self.out_features, self.rank), dtype=dtype), device=device)  # (out, r)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)                           # (..., out)
        down = F.linear(self.dropout(x), self.lora_A)                     # (..., r)
        up = F.linear(down, self.lora_B)                                  # (..., out)
        return y + up * self.scale

    def merged_weight(self):
        """W + (alpha / r) B A as a NumPy array (out, in)."""
        a, b, w = (np.asarray(p.numpy()) for p in (self.lora_A, self.lora_B, self.weight))
        return (w + (self.scale * (b @ a)).astype(w.dtype)).astype(w.dtype)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, alpha={self.alpha}"


def check_rank(rank, in_features, out_features, name="a layer"):
    """Refuse a rank above min(in, out): B A then has no more directions than W itself, and the adapter
    only costs more parameters (r * (in + out)) than the layer has (in * out)."""
    if rank > min(in_features, out_features):
        raise ValueError(f"LoRA rank {rank:,} is larger than {name} ({in_features:,} in, {out_features:,} out) "
                         f"allows: its adapter would train {rank * (in_features + out_features):,} parameters, "
                         f"the layer has {in_features * out_features:,}; use a rank of at most "
                         f"{min(in_features, out_features):,} (usually 4 to 64)")


def _parent_and_attr(model, dotted):
    parts = dotted.split(".")
    parent = model
    for p in parts[:-1]:
        parent = getattr(parent, p)
    return parent, parts[-1]


def _matches(name, targets):
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_lora(model, rank=8, alpha=16.0, targets=DEFAULT_TARGETS, dropout=0.0):
    """Replace every ``nn.Linear`` whose dotted name ends with one of ``targets`` by a LoRALinear.

    ``targets=None`` wraps every Linear in the model. Returns the list of wrapped names. Freezing is
    separate (``mark_trainable``), so the caller decides what else trains.
    """
    layers = {name: m for name, m in model.named_modules()
              if type(m) is nn.Linear and name and (targets is None or _matches(name, targets))}
    if not layers:
        raise ValueError(f"apply_lora: no Linear layer matches {targets!r}")
    for name, layer in layers.items():      # check every layer before changing any
        check_rank(rank, layer.in_features, layer.out_features, name)
    chosen = list(layers)
    for name in chosen:
        parent, attr = _parent_and_attr(model, name)
        setattr(parent, attr, LoRALinear(getattr(parent, attr), rank=rank, alpha=alpha, dropout=dropout))
    return chosen


def mark_trainable(model, extra=()):
    """Freeze every parameter except the LoRA adapters and those whose name starts with one of ``extra``
    (module prefixes such as "out_head"). Returns the names left trainable."""
    names = []
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        keep = leaf in ("lora_A", "lora_B") or any(name == e or name.startswith(e + ".") for e in extra)
        p.requires_grad = keep
        p.grad = None
        if keep:
            names.append(name)
    return names


def count_parameters(model):
    """(trainable, total) numbers of parameters."""
    params = model.parameters()
    return sum(p.size for p in params if p.requires_grad), sum(p.size for p in params)


def merge_lora(model):
    """Fold every adapter into its base weight and put plain ``nn.Linear`` layers back, in place.

    The merged model gives the same outputs as the adapted one (up to float rounding) and has the
    base model's parameter names, so it saves and loads like any GPT. Returns the model.
    """
    wrapped = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in wrapped:
        parent, attr = _parent_and_attr(model, name)
        lora = getattr(parent, attr)
        plain = nn.skip_init(nn.Linear, lora.in_features, lora.out_features, bias=False)
        plain.weight = nn.Parameter(lora.merged_weight(), requires_grad=lora.weight.requires_grad,
                                    device=lora.weight.device)
        plain.bias = lora.bias
        plain.training = lora.training
        setattr(parent, attr, plain)
    return model


def lora_state_dict(model):
    """Only the adapter arrays ({name: array}), for saving an adapter apart from its base model."""
    return {k: v for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] in ("lora_A", "lora_B")}
