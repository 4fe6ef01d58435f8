"""Scaled dot-product attention, fused: softmax(q k^T / sqrt(D) + mask) v with one hand-written backward."""
import math

import numpy as np

from .. import backend, cuda_blas, cuda_kernels, parallel
from ..tensor import Tensor
from .common import row_dots, same_device
from .dropout import dropout_mask

_masks = {}


def causal_mask(T, S, xp):
    """Boolean (T, S): True where query i must not see key j, i.e. j > i + (S - T).

    Queries are aligned to the end of the keys, so with a KV cache the newest query sees every key.
    Built once per shape and device.
    """
    key = (T, S, xp.__name__)
    if key not in _masks:
        i = np.arange(T)[:, None] + (S - T)
        _masks[key] = xp.asarray(np.arange(S)[None, :] > i)
    return _masks[key]


def causal_bias(T, S, dtype, xp):
    """(T, S) additive mask: 0 where query i may see key j, -inf where it may not. Built once per shape."""
    key = ("bias", T, S, str(dtype), xp.__name__)
    if key not in _masks:
        _masks[key] = xp.where(causal_mask(T, S, xp), xp.asarray(-np.inf, dtype=dtype), xp.asarray(0, dtype=dtype))
    return _masks[key]


SAFE_SCORE = 40.0   # exp(s) for |s| below this stays far inside float32's normal range (about e^-87 to e^88)


def scores_are_small(qs, k):
    """True when no score qs_i . k_j can reach SAFE_SCORE in size: |q . k| <= |q| |k| (Cauchy-Schwarz).

    The softmax subtracts each row's largest score only so that exp cannot overflow; when this bound
    shows it cannot, the (slow, row by row) max and the subtraction are skipped: same result.
    """
    if qs.size == 0 or k.size == 0:
        return False
    largest = row_dots(qs, qs).max() * row_dots(k, k).max()
    return bool(largest < SAFE_SCORE * SAFE_SCORE)      # False for inf or nan too


def _softmax_in_place(scores, bias, shift=True):
    """softmax over the last axis of a block of score rows, after adding ``bias`` (or None) to its last
    columns (the causal mask: -inf where a query must not look). ``shift=False`` when the scores are
    known to be small (``scores_are_small``): exp is then taken without subtracting the row maxima."""
    xp = backend.xp_of(scores)
    if bias is not None:
        masked = scores[..., scores.shape[-1] - bias.shape[-1]:]
        masked += bias
    if shift:
        scores -= scores.max(axis=-1, keepdims=True)
    xp.exp(scores, out=scores)
    scores /= (scores @ xp.ones(scores.shape[-1], dtype=scores.dtype))[..., None]   # BLAS row sums


def _softmax_backward_in_place(gp, p, g, out):
    """gp <- p (gp - sum(gp p)) over the last axis: the softmax's backward, in place, one block.

    sum_j gp_ij p_ij = sum_j (g_i . v_j) p_ij = g_i . out_i: the row sums come from the (T, D) gradient
    and result instead of a pass over the (T, S) weights (as flash attention does; dropout included).
    """
    gp -= row_dots(g, out)[..., None]
    gp *= p


def _heads_in_parallel(lead, T, S, xp):
    """Index tuples that share the (batch, head) axes out over the threads, or [()] (one piece) when the
    score matrices are too small for threads to pay."""
    if not lead or xp is not np or math.prod(lead) * T * S < parallel.MIN_ELEMENTS:
        return [()]
    return parallel.split_leading(lead, parallel.WORKERS)


BLOCK = 64          # query rows per block when causal attention skips the keys a block cannot see
GPU_BLOCK = 256     # the same on a GPU, where fewer, larger products pay


def query_blocks(T, S, causal, xp):
    """(lo, hi, keys): queries lo:hi look at keys :keys only. With causal attention and T of at least
    4 blocks (2 on a GPU), the rows are cut into blocks, so the scores of a block's future keys, above
    the diagonal, are never computed (with 4 blocks 10/16 of the products remain, with 16 blocks 17/32);
    otherwise one block. A GPU cuts blocks only when its products can take strided views as they lie."""
    block, least = (BLOCK, 4) if xp is np else (GPU_BLOCK, 2)
    if not causal or T < least * block or (xp is not np and not cuda_kernels.use(xp, "strided_matmul")):
        return [(0, T, S)]
    offset = S - T                      # queries are aligned to the end of the keys (KV cache)
    return [(lo, min(T, lo + block), offset + min(T, lo + block)) for lo in range(0, T, block)]


def _product(xp):
    """matmul(a, b, out): NumPy's, or on a GPU cuBLAS reading transposed and sliced views in place."""
    if cuda_kernels.use(xp, "strided_matmul"):
        return cuda_blas.matmul_into
    return lambda a, b, out: xp.matmul(a, b, out=out)


def scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, training=True):
    """q (B, H, T, D), k and v (B, H, S, D) -> (B, H, T, D)."""
    if q.ndim < 2 or k.shape != v.shape or q.shape[-1] != k.shape[-1] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape}, v {v.shape}; "
                         "expected (B, H, T, D), (B, H, S, D), (B, H, S, D)")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"scaled_dot_product_attention: q, k, v are {q.dtype}, {k.dtype}, {v.dtype}; "
                        "they need one dtype")
    same_device("scaled_dot_product_attention", q, k, v)
    xp = backend.xp_of(q.data)
    T, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
    if causal and S < T:
        raise ValueError(f"scaled_dot_product_attention: causal attention needs at least as many keys ({S}) as queries ({T})")
    scale = q.dtype.type(1.0 / math.sqrt(D))
    qd, kd, vd = q.data, k.data, v.data                 # BLAS takes strided views (unit last stride) as they are
    lead = q.shape[:-2]
    bias = causal_bias(T, S, q.dtype, xp) if causal else None   # -inf above the diagonal
    qs = xp.empty(q.shape, dtype=q.dtype)               # queries times the scale, kept for backward
    p = xp.empty(lead + (T, S), dtype=q.dtype)          # attention weights (B, H, T, S)
    drop = dropout_mask(p.shape, dropout_p, p.dtype, backend.device_of(p)) if dropout_p and training else None
    pd = xp.empty_like(p) if drop is not None else p    # weights after dropout
    pieces = _heads_in_parallel(lead, T, S, xp)
    blocks = query_blocks(T, S, causal, xp)
    mm = _product(xp)
    one_call = xp is not np and mm is cuda_blas.matmul_into
    if one_call:
        # cuBLAS walks a batch with one stride: with k, v and the result head-major (B, H, ., D) in memory,
        # each product over all (batch, head) pairs is a single call (copying k and v costs far less)
        kd, vd = xp.ascontiguousarray(kd), xp.ascontiguousarray(vd)
        out_view = xp.empty(q.shape, dtype=q.dtype)
    elif q.ndim >= 3:
        # write the result with heads inside tokens, (B, T, H, D) in memory, so the usual
        # out.transpose(0, 2, 1, 3).reshape(B, T, H * D) that follows needs no copy
        out_view = xp.swapaxes(xp.empty(lead[:-1] + (T, lead[-1], D), dtype=q.dtype), -2, -3)
    else:
        out_view = xp.empty(q.shape, dtype=q.dtype)
    # on a GPU: mask and softmax (and its backward) in one kernel pass over all the blocks' score rows; a
    # row never reads past its last visible key, so the unused corner of a block-cut matrix is never read
    fused = cuda_kernels.use(xp, "attention_softmax") and cuda_kernels.attention_softmax_supported(p)

    def block_bias(lo, hi, keys):
        """The mask of queries lo:hi over their last hi - lo keys, where the diagonal runs (None if
        not causal); every earlier key is visible to all of them."""
        return bias[lo:hi, keys - (hi - lo):keys] if bias is not None else None

    def forward_piece(ix):      # one group of heads: scores, softmax, weighted sum of values
        qs_i, p_i, pd_i, out_i = qs[ix], p[ix], pd[ix], out_view[ix]
        xp.multiply(qd[ix], scale, out=qs_i)            # scale the (T, D) queries, not the (T, S) scores
        k_t = xp.swapaxes(kd[ix], -1, -2)
        shift = fused or not scores_are_small(qs_i, kd[ix])   # (the GPU kernel finds its own row maxima)

        def weighted_values(lo, hi, keys):
            if drop is not None:
                xp.multiply(p_i[..., lo:hi, :keys], drop[ix][..., lo:hi, :keys], out=pd_i[..., lo:hi, :keys])
            mm(pd_i[..., lo:hi, :keys], vd[ix][..., :keys, :], out_i[..., lo:hi, :])
        for lo, hi, keys in blocks:
            mm(qs_i[..., lo:hi, :], k_t[..., :keys], p_i[..., lo:hi, :keys])
            if not fused:                               # while the block is in cache
                _softmax_in_place(p_i[..., lo:hi, :keys], block_bias(lo, hi, keys), shift)
                weighted_values(lo, hi, keys)
        if fused:
            cuda_kernels.attention_softmax_(p_i, causal)
            for lo, hi, keys in blocks:
                weighted_values(lo, hi, keys)
    parallel.run(forward_piece, pieces, uses_blas=True)

    def backward(g):
        gq, gk, gv = (xp.empty(a.shape, dtype=a.dtype) for a in (qd, kd, vd))
        if one_call:
            g = xp.ascontiguousarray(g)

        def backward_piece(ix):
            g_i, p_i, pd_i, qs_i, k_i, v_t = g[ix], p[ix], pd[ix], qs[ix], kd[ix], xp.swapaxes(vd[ix], -1, -2)
            out_i = out_view[ix]
            gp = xp.empty_like(p_i)                     # d loss / d scores (only the blocks' parts are used)

            def query_grads(lo, hi, keys):              # scores = qs k^T  =>  dq = scale ds k
                gqb = gq[ix][..., lo:hi, :]
                mm(gp[..., lo:hi, :keys], k_i[..., :keys, :], gqb)
                gqb *= scale
            for lo, hi, keys in blocks:                 # by query rows: dq
                gpb = gp[..., lo:hi, :keys]
                mm(g_i[..., lo:hi, :], v_t[..., :keys], gpb)                # dpd = g v^T
                if drop is not None:
                    gpb *= drop[ix][..., lo:hi, :keys]
                if not fused:
                    _softmax_backward_in_place(gpb, p_i[..., lo:hi, :keys], g_i[..., lo:hi, :], out_i[..., lo:hi, :])
                    query_grads(lo, hi, keys)
            if fused:
                cuda_kernels.attention_softmax_backward_(gp, p_i, causal)
                for lo, hi, keys in blocks:
                    query_grads(lo, hi, keys)
            if xp is not np and not one_call:
                # one block on a GPU whose batched products copy a transposed operand first: dv^T = g^T pd
                # and dk^T = qs^T ds keep the big (T, S) operands as they lie (only (T, D) ones move)
                xp.matmul(xp.swapaxes(g_i, -1, -2), pd_i, out=xp.swapaxes(gv[ix], -1, -2))
                xp.matmul(xp.swapaxes(qs_i, -1, -2), gp, out=xp.swapaxes(gk[ix], -1, -2))
                return
            start = 0
            for lo, _, keys in blocks:                  # by key columns: keys start:keys are seen by queries lo:
                mm(xp.swapaxes(pd_i[..., lo:, start:keys], -1, -2), g_i[..., lo:, :],
                   gv[ix][..., start:keys, :])                              # out = pd v  =>  dv = pd^T g
                mm(xp.swapaxes(gp[..., lo:, start:keys], -1, -2), qs_i[..., lo:, :],
                   gk[ix][..., start:keys, :])                              # dk = ds^T qs
                start = keys
        parallel.run(backward_piece, pieces, uses_blas=True)
        return gq, gk, gv
    return Tensor._make(out_view, (q, k, v), backward, "scaled_dot_product_attention")
