"""A plain PyTorch GPT of the same shape as gpt.GPT, for benchmarks only (never imported by the product).

Written the way a PyTorch user would: nn.Linear, nn.LayerNorm, F.scaled_dot_product_attention,
F.gelu(approximate="tanh"), F.cross_entropy.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, emb, heads, qkv_bias=True):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(emb), nn.LayerNorm(emb)
        self.qkv = nn.Linear(emb, 3 * emb, bias=qkv_bias)
        self.proj = nn.Linear(emb, emb)
        self.fc, self.fc_out = nn.Linear(emb, 4 * emb), nn.Linear(4 * emb, emb)

    def forward(self, x):
        B, T, E = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.heads, E // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, E))
        return x + self.fc_out(F.gelu(self.fc(self.norm2(x)), approximate="tanh"))


class TorchGPT(nn.Module):
    def __init__(self, vocab, context, emb, layers, heads):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, emb), nn.Embedding(context, emb)
        self.blocks = nn.ModuleList(Block(emb, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(emb)
        self.head = nn.Linear(emb, vocab, bias=False)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def names_from_ours(n_layers):
    """TorchGPT parameter name -> gpt.GPT parameter name, to load identical weights into both."""
    names = {"tok.weight": "tok_emb.weight", "pos.weight": "pos_emb.weight", "norm.weight": "final_norm.weight",
             "norm.bias": "final_norm.bias", "head.weight": "out_head.weight"}
    for i in range(n_layers):
        for theirs, ours in [("norm1", "norm1"), ("norm2", "norm2"), ("qkv", "attn.qkv"), ("proj", "attn.proj"),
                             ("fc", "mlp.fc"), ("fc_out", "mlp.proj")]:
            for w in ("weight", "bias"):
                names[f"blocks.{i}.{theirs}.{w}"] = f"blocks.{i}.{ours}.{w}"
    return names
