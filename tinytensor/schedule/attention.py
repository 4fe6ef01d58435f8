"""The schedule of fused attention (ops/attention.py): which query blocks, which heads on which thread, in
which memory layout, and on a GPU which fused kernels and strided products.

``Schedule`` applies the math of ops/attention.py (its per-block functions, handed in as the module
``math_``) piece by piece; nothing here computes a formula of its own.
"""
import math

import numpy as np

from .. import backend, config
from ..cuda import blas as cuda_blas, kernels as cuda_kernels
from . import parallel
from ..ops.dropout import dropout_mask
from ..ops.masks import causal_bias

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


def heads_in_parallel(lead, T, S, xp):
    """Index tuples that share the (batch, head) axes out over the threads, or [()] (one piece) when the
    score matrices are too small for threads to pay."""
    if not lead or xp is not np or math.prod(lead) * T * S < parallel.MIN_ELEMENTS:
        return [()]
    return parallel.split_leading(lead, config.threads)


def product(xp):
    """matmul(a, b, out): NumPy's, or on a GPU cuBLAS reading transposed and sliced views in place."""
    if cuda_kernels.use(xp, "strided_matmul"):
        return cuda_blas.matmul_into
    return lambda a, b, out: xp.matmul(a, b, out=out)


def result_array(shape, dtype, xp):
    """An empty (..., H, T, D) result with heads inside tokens, (..., T, H, D) in memory, so the usual
    out.transpose(0, 2, 1, 3).reshape(B, T, H * D) that follows needs no copy."""
    if len(shape) < 3:
        return xp.empty(shape, dtype=dtype)
    return xp.swapaxes(xp.empty(shape[:-3] + (shape[-2], shape[-3], shape[-1]), dtype=dtype), -2, -3)


class Schedule:
    """One call of the op: every choice between CPU and GPU, threads, blocks and layouts, made once here;
    ``forward()`` and ``backward(g)`` apply the math of ops/attention.py (``math_``) piece by piece (a piece: some key/value heads
    with their groups of query heads). q is (..., H_kv, G, T, D), k and v (..., H_kv, 1, S, D): ``grouped``."""

    def __init__(self, math_, q, k, v, causal, dropout_p):
        self.math = math_
        xp = self.xp = backend.xp_of(q)
        G, T, S, D = q.shape[-3], q.shape[-2], k.shape[-2], q.shape[-1]
        lead = q.shape[:-2]
        self.causal, self.scale = causal, q.dtype.type(1.0 / math.sqrt(D))
        self.q, self.k, self.v = q, k, v                   # BLAS takes strided views (unit last stride) as they are
        self.bias = causal_bias(T, S, q.dtype, xp) if causal else None   # -inf above the diagonal
        self.qs = xp.empty(q.shape, dtype=q.dtype)         # queries times the scale, kept for backward
        self.p = xp.empty(lead + (T, S), dtype=q.dtype)    # attention weights (B, H_kv, G, T, S)
        self.keep = dropout_mask(self.p.shape, dropout_p, q.dtype, backend.device_of(q)) if dropout_p else None
        self.pd = xp.empty_like(self.p) if self.keep is not None else self.p    # weights after dropout
        self.pieces = heads_in_parallel(k.shape[:-3], G * T, S, xp)
        self.blocks = query_blocks(T, S, causal, xp)
        self.mm = product(xp)
        self.one_call = xp is not np and self.mm is cuda_blas.matmul_into
        if self.one_call:
            # cuBLAS walks a batch with one stride: with k, v and the result head-major (B, H, ., D) in memory,
            # each product over all (batch, head) pairs is a single call (copying k and v costs far less)
            self.k, self.v = xp.ascontiguousarray(k), xp.ascontiguousarray(v)
            self.out = xp.empty(q.shape, dtype=q.dtype)
        else:
            self.out = result_array(lead[:-2] + (lead[-2] * G, T, D), q.dtype, xp).reshape(q.shape)
        # on a GPU: mask and softmax (and its backward) in one kernel pass over all the blocks' score rows; a
        # row never reads past its last visible key, so the unused corner of a block-cut matrix is never read
        self.fused = cuda_kernels.use(xp, "attention_softmax") and cuda_kernels.attention_softmax_supported(self.p)

    def _block_bias(self, lo, hi, keys):
        """The mask of queries lo:hi over their last hi - lo keys, where the diagonal runs (None if not
        causal); every earlier key is visible to all of them."""
        return self.bias[lo:hi, keys - (hi - lo):keys] if self.bias is not None else None

    def forward(self):
        parallel.run(self._forward_piece, self.pieces, uses_blas=True)

    def _forward_piece(self, ix):
        xp, mm = self.xp, self.mm
        qs, p, pd, v, out = self.qs[ix], self.p[ix], self.pd[ix], self.v[ix], self.out[ix]
        keep = self.keep[ix] if self.keep is not None else None
        xp.multiply(self.q[ix], self.scale, out=qs)
        k_t = xp.swapaxes(self.k[ix], -1, -2)
        # (the GPU kernel finds its own row maxima)
        shift = self.fused or not self.math.scores_are_small(qs, self.k[ix])

        def values(lo, hi, keys):
            self.math._weighted_values(mm, p[..., lo:hi, :keys], keep[..., lo:hi, :keys] if keep is not None else None,
                                       pd[..., lo:hi, :keys], v[..., :keys, :], out[..., lo:hi, :])
        for lo, hi, keys in self.blocks:
            self.math._scores(mm, qs[..., lo:hi, :], k_t[..., :keys], p[..., lo:hi, :keys])
            if not self.fused:                                  # while the block is in cache
                self.math._softmax_(p[..., lo:hi, :keys], self._block_bias(lo, hi, keys), shift)
                values(lo, hi, keys)
        if self.fused:
            cuda_kernels.attention_softmax_(p, self.causal)     # every block's rows in one kernel
            for lo, hi, keys in self.blocks:
                values(lo, hi, keys)

    def backward(self, g):
        xp = self.xp
        grads = tuple(xp.empty(a.shape, dtype=a.dtype) for a in (self.q, self.k, self.v))   # dq, dk, dv
        if self.one_call:
            g = xp.ascontiguousarray(g)
        parallel.run(lambda ix: self._backward_piece(ix, g, *grads), self.pieces, uses_blas=True)
        return grads

    def _backward_piece(self, ix, g, dq, dk, dv):
        xp, mm = self.xp, self.mm
        g, p, pd, qs, k, out = g[ix], self.p[ix], self.pd[ix], self.qs[ix], self.k[ix], self.out[ix]
        dq, dk, dv = dq[ix], dk[ix], dv[ix]
        keep = self.keep[ix] if self.keep is not None else None
        v_t = xp.swapaxes(self.v[ix], -1, -2)
        ds = xp.empty_like(p)                           # dL/dp, then dL/ds (only the blocks' parts are used)
        for lo, hi, keys in self.blocks:                # by query rows: dp, ds, dq
            dsb = ds[..., lo:hi, :keys]
            self.math._grad_weights(mm, g[..., lo:hi, :], v_t[..., :keys],
                                    keep[..., lo:hi, :keys] if keep is not None else None, dsb)
            if not self.fused:
                self.math._softmax_backward_(dsb, p[..., lo:hi, :keys], g[..., lo:hi, :], out[..., lo:hi, :])
                self.math._grad_queries(mm, dsb, k[..., :keys, :], self.scale, dq[..., lo:hi, :])
        if self.fused:
            cuda_kernels.attention_softmax_backward_(ds, p, self.causal)
            for lo, hi, keys in self.blocks:
                self.math._grad_queries(mm, ds[..., lo:hi, :keys], k[..., :keys, :], self.scale, dq[..., lo:hi, :])
        if xp is not np and not self.one_call:
            # one block on a GPU whose batched products copy a transposed operand first: dv^T = g^T pd
            # and dk^T = qs^T ds keep the big (T, S) operands as they lie (only (T, D) ones move)
            xp.matmul(xp.swapaxes(g, -1, -2), pd, out=xp.swapaxes(dv, -1, -2))
            xp.matmul(xp.swapaxes(qs, -1, -2), ds, out=xp.swapaxes(dk, -1, -2))
            return
        start = 0
        for lo, _, keys in self.blocks:                 # by key columns: keys start:keys are seen by queries lo:
            self.math._grad_keys_values(mm, pd[..., lo:, start:keys], ds[..., lo:, start:keys], g[..., lo:, :],
                                        qs[..., lo:, :], dk[..., start:keys, :], dv[..., start:keys, :])
            start = keys
