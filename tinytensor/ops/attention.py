"""Scaled dot-product attention, fused: softmax(q k^T / sqrt(D) + mask) v with one hand-written backward.

Its composed twin: ``reference.scaled_dot_product_attention``. Read top-down: the math (each step of
forward and backward on one block of queries), then the op. The schedule that applies the math lives
apart, in schedule/attention.py: groups of heads on threads, causal query blocks that skip the keys they
cannot see, and on a GPU fused kernels and strided products. Long contexts on the CPU take the tiled
path instead (schedule/attention_tiles.py: the same math a tile at a time, no (T, S) array held), except
with dropout, whose keep-mask is drawn over the whole (T, S) as the twin draws it.

Grouped-query attention: k and v may have fewer heads than q (H_kv dividing H); query head h then reads
key/value head h // (H / H_kv). The schedules see every array as (..., H_kv, G, T, D), the G query heads
of a group side by side over one key/value head (G = 1 for k and v, broadcast in the products), so
nothing is copied per group; dk and dv sum what the group's heads send back.

The plain rung, at the top of this file: ``plain_attention`` and ``plain_attention_backward``
(``reference.PLAIN["scaled_dot_product_attention"]``): NumPy in and out, the backward written by hand from
these formulas.
"""
import math
import sys

import numpy as np

from .. import amp, backend, config, twins as reference
from ..cuda import flash_attention
from ..schedule import attention as attention_schedule, attention_tiles
from ..tensor import Tensor
from .common import floating, row_dots, same_device
from .masks import causal_mask  # noqa: F401  (causal_mask is F.causal_mask)

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_attention(q, k, v, causal=True):
    """out = softmax(q k^T / sqrt(D) + mask) v: q (..., H, T, D), k and v (..., H_kv, S, D), with H a
    multiple of H_kv (each key/value head serves G = H / H_kv query heads); query i sees keys j <= i + S - T."""
    G = q.shape[-3] // k.shape[-3]
    k, v = np.repeat(k, G, axis=-3), np.repeat(v, G, axis=-3)                # (..., H, S, D)
    T, S = q.shape[-2], k.shape[-2]
    s = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])                       # (..., H, T, S)
    if causal:
        s = np.where(np.triu(np.ones((T, S), dtype=bool), S - T + 1), -np.inf, s)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v, (q, k, v, p, G)


def plain_attention_backward(g, cache):
    """dv = p^T g, dp = g v^T, ds = p (dp - rowsum(dp p)), dq = ds k / sqrt(D), dk = ds^T q / sqrt(D);
    dk and dv summed over the G query heads that read each key/value head."""
    q, k, v, p, G = cache
    scale = 1 / math.sqrt(q.shape[-1])
    dv = p.swapaxes(-1, -2) @ g
    dp = g @ v.swapaxes(-1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq, dk = ds @ k * scale, ds.swapaxes(-1, -2) @ q * scale
    heads = k.shape[:-3] + (k.shape[-3] // G, G) + k.shape[-2:]               # (..., H_kv, G, S, D)
    return dq, dk.reshape(heads).sum(axis=-3), dv.reshape(heads).sum(axis=-3)


# ----- the math: one block of query rows against the keys it sees -----
#
# Forward, with qs = q / sqrt(D) (the (T, D) queries scaled once, not the (T, S) scores), bias 0 or -inf
# (the causal mask) and keep dropout's scaled mask (0, or 1 / (1 - p_drop); without dropout pd is p):
#     s = qs k^T        p = softmax(s + bias)        pd = p keep        out = pd v
# Backward, from g = dL/dout:
#     dp = (g v^T) keep        ds = p (dp - rowsum(dp p))        dq = ds k / sqrt(D)
#     dv = pd^T g              dk = ds^T qs
# Each function writes into the arrays it is given; ``mm(a, b, out)`` is the matrix product the
# schedule chose (NumPy's, or cuBLAS reading strided views on a GPU).


def _scores(mm, qs, k_t, s):
    """s = qs k^T: how well each query matches each key."""
    mm(qs, k_t, s)


def _softmax_(s, bias, shift=True):
    """s <- softmax(s + bias) over each row, in place; ``bias`` (or None) covers the last columns of s.

    ``shift=False`` when ``scores_are_small``: the row maxima are subtracted only so that exp cannot
    overflow, so they are skipped (a last-axis max of short rows is NumPy's slowest pass here); the row
    sums are a product with ones, which BLAS takes about three times faster than NumPy's sum. With the
    shift, scores below the row's max by more than FLUSH are raised to -FLUSH, so that no weight is a
    subnormal number, which would slow exp and the products ten-fold (attention_tiles.floor_)."""
    xp = backend.xp_of(s)
    masked = s[..., s.shape[-1] - bias.shape[-1]:] if bias is not None else None
    if bias is not None:
        masked += bias
    if shift:
        s -= s.max(axis=-1, keepdims=True)
        xp.maximum(s, -attention_tiles.FLUSH, out=s)
        if bias is not None:
            masked += bias                  # the max lifted the mask's -inf too
    xp.exp(s, out=s)
    s *= (1 / (s @ xp.ones(s.shape[-1], dtype=s.dtype)))[..., None]     # a product pass: faster than division


SAFE_SCORE = 40.0   # exp(s) for |s| below this stays far inside float32's normal range (about e^-87 to e^88)


def score_bound(qs, k, scale=1.0):
    """The largest size any score (qs_i . k_j) scale can have: |q . k| <= |q| |k| (Cauchy-Schwarz);
    inf when q or k is empty, nan when they hold nan."""
    if qs.size == 0 or k.size == 0:
        return math.inf
    return math.sqrt(float(row_dots(qs, qs).max()) * float(row_dots(k, k).max())) * scale


def scores_are_small(qs, k, scale=1.0):
    """True when no score (qs_i . k_j) scale can reach SAFE_SCORE in size."""
    return bool(score_bound(qs, k, scale) < SAFE_SCORE)      # False for inf or nan too


def _weighted_values(mm, p, keep, pd, v, out):
    """pd = p keep (dropout; skipped when keep is None, pd is then p); out = pd v."""
    if keep is not None:
        backend.xp_of(p).multiply(p, keep, out=pd)
    mm(pd, v, out)


def _grad_weights(mm, g, v_t, keep, dp):
    """dp = (g v^T) keep: out = pd v  =>  dpd = g v^T, and dropout passes it through the kept weights."""
    mm(g, v_t, dp)
    if keep is not None:
        dp *= keep


def _softmax_backward_(dp, p, g, out):
    """dp <- ds = p (dp - rowsum(dp p)), in place: d p_i / d s_j = p_i (δ_ij - p_j).

    rowsum(dp p) = sum_j (g . v_j) keep_j p_j = g . out: taken from the (T, D) gradient and result
    instead of a pass over the (T, S) weights (as flash attention does; exact with dropout too)."""
    dp -= row_dots(g, out)[..., None]
    dp *= p


def _grad_queries(mm, ds, k, scale, dq):
    """dq = ds k / sqrt(D): s = qs k^T with qs = q / sqrt(D)."""
    mm(ds, k, dq)
    dq *= scale


def _grad_keys_values(mm, pd, ds, g, qs, dk, dv):
    """dv = pd^T g (out = pd v) and dk = ds^T qs (s = qs k^T); with grouped-query attention, summed over
    the G query heads (axis -3) that read one key/value head."""
    xp = backend.xp_of(pd)
    for a, b, grad in ((pd, g, dv), (ds, qs, dk)):
        if a.shape[-3] == 1:
            mm(xp.swapaxes(a, -1, -2), b, grad)
        else:
            xp.sum(xp.matmul(xp.swapaxes(a, -1, -2), b), axis=-3, keepdims=True, out=grad)


# ----- the op -----

def scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, training=True):
    """q (B, H, T, D), k and v (B, H_kv, S, D) -> (B, H, T, D); H_kv = H (multi-head attention) or a
    divisor of H (grouped-query attention: each key/value head serves H / H_kv query heads)."""
    floating("scaled_dot_product_attention", q, k, v)
    if q.ndim >= 2 and (q.shape[-2] == 0 or k.shape[-2] == 0):
        raise ValueError(f"scaled_dot_product_attention: no positions (q {tuple(q.shape)}, k {tuple(k.shape)}); "
                         "attention needs at least one query and one key")
    if amp.is_active():                    # 16-bit in and out, softmax in float32 (amp.py)
        return amp.attention(scaled_dot_product_attention, q, k, v, causal, dropout_p, training,
                             native=flash_attention.takes_low_precision(dropout_p if training else 0.0))
    groups = _check(q, k, v, causal)
    if config.reference_ops:
        return reference.scaled_dot_product_attention(q, k, v, causal, dropout_p, training)
    xp = backend.xp_of(q.data)
    if groups > 1 and xp is not np:
        # GPU: its products take no broadcast operand (cuda_blas), so each key/value head is repeated for
        # the G query heads it serves, a copy of k and v as in the twin; autograd sums dk, dv back
        k, v, groups = reference.repeat_kv(k, groups), reference.repeat_kv(v, groups), 1
    if flash_attention.applies(q, k, v, dropout_p if training else 0.0):   # GPU, when switched on
        return flash_attention.attention(q, k, v, causal)
    kv_heads = k.shape[-3] if k.ndim >= 3 else 1
    qd, kd, vd = grouped(q.data, kv_heads, groups), grouped(k.data, kv_heads, 1), grouped(v.data, kv_heads, 1)
    T, S = q.shape[-2], k.shape[-2]
    dropout_p = dropout_p if training else 0.0
    if attention_tiles.chosen(T, S, dropout_p, xp):
        out = attention_schedule.result_array(q.shape, q.dtype, xp)
        bound = score_bound(qd, kd, 1.0 / math.sqrt(q.shape[-1]))
        schedule = attention_tiles.TiledSchedule(qd, kd, vd, grouped(out, kv_heads, groups), causal,
                                                 shift=not bound < SAFE_SCORE, bound=bound)
    else:
        schedule = attention_schedule.Schedule(sys.modules[__name__], qd, kd, vd, causal, dropout_p)
        out = schedule.out.reshape(q.shape)
    schedule.forward()

    def backward(g):
        grads = schedule.backward(grouped(g, kv_heads, groups))
        return tuple(grad.reshape(x.shape) for grad, x in zip(grads, (q, k, v)))
    twin = (lambda: reference.scaled_dot_product_attention(q, k, v, causal)) if not dropout_p else None
    return Tensor._make(out, (q, k, v), backward, "scaled_dot_product_attention", twin=twin)


def _check(q, k, v, causal):
    """The number of query heads per key/value head (G), or a clear error for shapes that do not fit."""
    heads, kv_heads = (q.shape[-3], k.shape[-3]) if q.ndim >= 3 and k.ndim >= 3 else (1, 1)
    if q.ndim < 2 or q.ndim != k.ndim or k.shape != v.shape or q.shape[-1] != k.shape[-1] \
            or q.shape[:-3] != k.shape[:-3]:
        raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape}, v {v.shape}; "
                         "expected (B, H, T, D), (B, H_kv, S, D), (B, H_kv, S, D)")
    if (heads % kv_heads if kv_heads else heads):
        raise ValueError(f"scaled_dot_product_attention: q {q.shape} has {heads} heads and k, v {k.shape} "
                         f"have {kv_heads}; the query heads must be a multiple of the key/value heads "
                         "(grouped-query attention)")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"scaled_dot_product_attention: q, k, v are {q.dtype}, {k.dtype}, {v.dtype}; "
                        "they need one dtype")
    same_device("scaled_dot_product_attention", q, k, v)
    if causal and k.shape[-2] < q.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: causal attention needs at least as many keys "
                         f"({k.shape[-2]}) as queries ({q.shape[-2]})")
    return heads // kv_heads if kv_heads else 1


def grouped(a, kv_heads, groups):
    """a (..., H, T, D) viewed as (..., H_kv, G, T, D) with H = H_kv G (k and v: G = 1): the query heads
    that share a key/value head side by side. No copy: one axis is split in two. (T, D): one head."""
    lead = a.shape[:-3] if a.ndim >= 3 else ()
    return a.reshape(lead + (kv_heads, groups) + a.shape[-2:])
