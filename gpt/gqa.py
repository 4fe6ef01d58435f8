"""Grouped-query attention (GQA): groups of query heads share one head of keys and values.

Llama 3 and Qwen3 give their H query heads only H_kv < H heads of keys and values: query head h reads
key/value head h // (H / H_kv). The result is ordinary attention once each key/value head is repeated
for its group, which is what ``grouped_attention`` does here (``repeat_kv``, the way Hugging Face's
models do it). What GQA saves is the KV cache and the k/v projections: they hold H_kv heads, not H.

This is the one place the models call attention from; when ``F.scaled_dot_product_attention`` takes
fewer key/value heads itself, ``grouped_attention`` becomes that call and nothing else changes.
"""
import tinytensor as tt
import tinytensor.functional as F


class RepeatKV(tt.Function):
    """(B, H_kv, S, D) -> (B, H_kv * n_rep, S, D): each head repeated n_rep times, side by side."""

    @staticmethod
    def forward(ctx, x, n_rep):
        B, H_kv, S, D = x.shape
        ctx.n_rep = n_rep
        return ctx.xp.broadcast_to(x[:, :, None], (B, H_kv, n_rep, S, D)).reshape(B, H_kv * n_rep, S, D)

    @staticmethod
    def backward(ctx, g):
        # each copy passed its head on unchanged, so the head's gradient is the sum over its copies
        B, H, S, D = g.shape
        return g.reshape(B, H // ctx.n_rep, ctx.n_rep, S, D).sum(axis=2), None


def repeat_kv(x, n_rep):
    """Key or value heads (B, H_kv, S, D) repeated for their groups of query heads: (B, H_kv * n_rep, S, D)."""
    return x if n_rep == 1 else RepeatKV.apply(x, n_rep)


def grouped_attention(q, k, v, causal=True, dropout_p=0.0, training=True):
    """Causal attention of q (B, H, T, D) over k and v (B, H_kv, S, D), H a multiple of H_kv."""
    H, H_kv = q.shape[1], k.shape[1]
    if H % H_kv:
        raise ValueError(f"grouped_attention: {H} query heads cannot share {H_kv} key/value heads evenly")
    n_rep = H // H_kv
    return F.scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), causal=causal,
                                          dropout_p=dropout_p, training=training)
