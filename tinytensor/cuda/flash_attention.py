"""Flash attention on a GPU: softmax(q k^T / sqrt(D) + mask) v without ever writing the (T, S) scores.

The same online softmax as examples/12_attention_in_tiles.py, in the FlashAttention-2 arrangement:

forward, per block of BLOCK_Q query rows, walking BLOCK_K keys (a tile) at a time, keeping per row
    m    the largest score so far          l    the sum of exp(s - m) so far
    acc  the sum of exp(s - m) v so far    (a tile with a larger score rescales l and acc by exp(m_old - m_new))
    out = acc / l,   lse = m + log(l)       (all the backward needs to rebuild any tile of the weights)
backward, with delta_i = dO_i . O_i (= rowsum(dP P), as the fused op's backward uses too),
    p = exp(s - lse),  dp = dO v^T,  ds = p (dp - delta)
    dq pass, per block of queries over the key tiles:   dq = scale * sum_j ds_ij k_j
    dk/dv pass, per block of keys over the query tiles: dv = sum_i p_ij dO_i,  dk = sum_i ds_ij (scale q_i)
Causal attention (query i sees keys j <= i + S - T) skips every tile above the diagonal. Nothing of
size (T, S) is stored; each pass is one kernel launch over all (batch, head) pairs.

Read first: ``forward`` and ``backward`` below, the same tiles in NumPy (the CPU twin; also runs on
CuPy). ``SOURCE`` is the CUDA version, one CUDA thread group of SPLIT threads per row, each thread
holding D / SPLIT of the row's numbers (dimension d = part + SPLIT * t, so the threads of a warp read
shared memory without bank conflicts); its dot products are summed across the group by warp shuffles.
Inputs may be float32, float16 or bfloat16 (16-bit values are widened as they are loaded); all
arithmetic, the softmax and the log-sum-exp are float32.

On a GPU this runs only when switched on (``TINYTENSOR_CUDA_KERNELS=all,flash_attention``): it has not
yet passed tests/gpu/test_gpu.py on a real GPU. tests/gpu/test_flash_attention.py checks the twin against the
fused op, runs ``SOURCE`` itself on the CPU (a C++ shim plays blocks, threads, shared memory and warp
shuffles) and compiles it with nvcc.
"""
import math

import numpy as np

from .. import amp, backend
from . import kernels as cuda_kernels

BLOCK_Q = 64        # query rows per block (forward and dq pass)
BLOCK_K = 32        # keys per tile held in shared memory
BLOCK_KV = 64       # key rows per block (dk/dv pass)
QUERY_TILE = 32     # queries per tile held in shared memory (dk/dv pass)
SPLIT = 2           # threads per row
MAX_HEAD_DIM = 128

# ----- the math: the tiles in NumPy (or CuPy), one call over all (batch, head) pairs -----


def _visible(rows, cols, offset):
    """(len(rows), len(cols)) True where query ``rows[a]`` may see key ``cols[b]`` under the causal mask."""
    return cols[None, :] <= rows[:, None] + offset


def forward(q, k, v, causal, block_q=BLOCK_Q, block_k=BLOCK_K):
    """q (..., T, D), k and v (..., S, D) -> out (..., T, D), lse (..., T): the tiled online softmax."""
    xp = backend.xp_of(q)
    T, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
    offset, scale = S - T, q.dtype.type(1.0 / math.sqrt(D))
    out = xp.empty(q.shape, dtype=q.dtype)
    lse = xp.empty(q.shape[:-1], dtype=q.dtype)
    for i0 in range(0, T, block_q):
        i1 = min(T, i0 + block_q)
        rows = xp.arange(i0, i1)
        qs = q[..., i0:i1, :] * scale                                   # (..., r, D)
        keys = i1 - 1 + offset + 1 if causal else S                     # the block's last row sees up to here
        m = xp.full(qs.shape[:-1], -np.inf, dtype=q.dtype)
        l = xp.zeros(qs.shape[:-1], dtype=q.dtype)
        acc = xp.zeros(qs.shape, dtype=q.dtype)
        for j0 in range(0, keys, block_k):
            j1 = min(keys, j0 + block_k)
            s = qs @ xp.swapaxes(k[..., j0:j1, :], -1, -2)              # (..., r, c)
            if causal:
                s = xp.where(_visible(rows, xp.arange(j0, j1), offset), s, -np.inf)
            m_new = xp.maximum(m, s.max(axis=-1))
            correction = xp.exp(m - m_new)                              # rescale what came before
            p = xp.exp(s - m_new[..., None])
            l = l * correction + p.sum(axis=-1)
            acc = acc * correction[..., None] + p @ v[..., j0:j1, :]
            m = m_new
        out[..., i0:i1, :] = acc / l[..., None]
        lse[..., i0:i1] = m + xp.log(l)
    return out, lse


def backward(q, k, v, out, lse, g, causal, block_q=BLOCK_Q, block_k=BLOCK_K, block_kv=BLOCK_KV,
             query_tile=QUERY_TILE):
    """(dq, dk, dv) from g = dL/dout, rebuilding each tile of weights from lse; no (T, S) array."""
    xp = backend.xp_of(q)
    T, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
    offset, scale = S - T, q.dtype.type(1.0 / math.sqrt(D))
    delta = (g * out).sum(axis=-1)                                      # (..., T): dO_i . O_i
    qs = q * scale
    dq = xp.empty(q.shape, dtype=q.dtype)
    for i0 in range(0, T, block_q):                                     # dq: query blocks over key tiles
        i1 = min(T, i0 + block_q)
        rows = xp.arange(i0, i1)
        keys = i1 - 1 + offset + 1 if causal else S
        acc = xp.zeros(qs[..., i0:i1, :].shape, dtype=q.dtype)
        for j0 in range(0, keys, block_k):
            j1 = min(keys, j0 + block_k)
            p, ds = _weights_and_grads(xp, qs[..., i0:i1, :], k[..., j0:j1, :], v[..., j0:j1, :],
                                       g[..., i0:i1, :], lse[..., i0:i1], delta[..., i0:i1],
                                       rows, xp.arange(j0, j1), offset, causal)
            acc += ds @ k[..., j0:j1, :]
        dq[..., i0:i1, :] = acc * scale
    dk = xp.empty(k.shape, dtype=k.dtype)
    dv = xp.empty(v.shape, dtype=v.dtype)
    for j0 in range(0, S, block_kv):                                    # dk, dv: key blocks over query tiles
        j1 = min(S, j0 + block_kv)
        cols = xp.arange(j0, j1)
        dk_acc = xp.zeros(k[..., j0:j1, :].shape, dtype=k.dtype)
        dv_acc = xp.zeros(dk_acc.shape, dtype=k.dtype)
        first = max(0, j0 - offset) if causal else 0                    # earlier queries see none of these keys
        for i0 in range(first, T, query_tile):
            i1 = min(T, i0 + query_tile)
            p, ds = _weights_and_grads(xp, qs[..., i0:i1, :], k[..., j0:j1, :], v[..., j0:j1, :],
                                       g[..., i0:i1, :], lse[..., i0:i1], delta[..., i0:i1],
                                       xp.arange(i0, i1), cols, offset, causal)
            dv_acc += xp.swapaxes(p, -1, -2) @ g[..., i0:i1, :]
            dk_acc += xp.swapaxes(ds, -1, -2) @ qs[..., i0:i1, :]
        dk[..., j0:j1, :] = dk_acc
        dv[..., j0:j1, :] = dv_acc
    return dq, dk, dv


def _weights_and_grads(xp, qs, k, v, g, lse, delta, rows, cols, offset, causal):
    """One (query tile, key tile): p = exp(qs k^T - lse) (0 where masked) and ds = p (g v^T - delta)."""
    p = xp.exp(qs @ xp.swapaxes(k, -1, -2) - lse[..., None])
    if causal:
        p = xp.where(_visible(rows, cols, offset), p, 0)
    ds = p * (g @ xp.swapaxes(v, -1, -2) - delta[..., None])
    return p, ds


# ----- the CUDA kernels -----

SOURCE = r"""
// Compiled with these set first: ELEM_KIND (0 float, 1 float16, 2 bfloat16), HEAD_DIM, SPLIT, BLOCK_Q,
// BLOCK_K, BLOCK_KV, QUERY_TILE. Strides are in elements; the last axis of every array has stride 1.
#define PER (HEAD_DIM / SPLIT)                  // numbers of a row each thread holds: d = part + SPLIT * t
#define TT_NEG_INF __int_as_float(0xff800000)

// the sum of v over the SPLIT threads of one row (consecutive lanes of a warp); every lane takes part
__device__ __forceinline__ float tt_row_sum(float v) {
    for (int o = SPLIT / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// where a thread of the forward and dq grids works: (batch, head), its part of a row, its query i (rows past
// T compute with query iq = T - 1, as the warp shuffles need every lane, and never write), the keys any row
// of its block sees, and the keys its own row sees (queries sit at the end of the keys, as with a KV cache)
struct TTQueryRow { int bh, b, h, part, i, iq, keys, mine; };
__device__ __forceinline__ TTQueryRow tt_query_row(int H, int T, int S, int causal) {
    TTQueryRow r;
    r.bh = blockIdx.y;
    r.b = r.bh / H;
    r.h = r.bh % H;
    r.part = threadIdx.x % SPLIT;
    const int i0 = blockIdx.x * BLOCK_Q, last = (i0 + BLOCK_Q < T ? i0 + BLOCK_Q : T) - 1;
    r.i = i0 + threadIdx.x / SPLIT;
    r.iq = r.i < T ? r.i : T - 1;
    r.keys = causal ? last + (S - T) + 1 : S;
    r.mine = causal ? r.iq + (S - T) + 1 : S;
    return r;
}

// keys [j0, j0 + BLOCK_K) of one (batch, head) into shared memory as float; zeros past `keys`
__device__ __forceinline__ void tt_load_tile(float (*dst)[HEAD_DIM], const ELEM* src, long long stride, int j0,
                                             int keys, int rows) {
    for (int e = threadIdx.x; e < rows * HEAD_DIM; e += blockDim.x) {
        int r = e / HEAD_DIM, d = e % HEAD_DIM, j = j0 + r;
        dst[r][d] = j < keys ? tt_load(src + (long long)j * stride + d) : 0.0f;
    }
}

// forward: grid (ceil(T / BLOCK_Q), B * H), BLOCK_Q * SPLIT threads; out, and lse (B * H, T) float32
extern "C" __global__ void tt_flash_fwd(const ELEM* q, const ELEM* k, const ELEM* v, ELEM* out, float* lse,
        int H, int T, int S, int causal, float scale,
        long long qb, long long qh, long long qt, long long kb, long long kh, long long kt,
        long long vb, long long vh, long long vt, long long ob, long long oh, long long ot) {
    __shared__ float ks[BLOCK_K][HEAD_DIM];
    __shared__ float vs[BLOCK_K][HEAD_DIM];
    const TTQueryRow r = tt_query_row(H, T, S, causal);
    const int bh = r.bh, b = r.b, h = r.h, part = r.part, i = r.i, iq = r.iq, keys = r.keys, mine = r.mine;
    const ELEM* kp = k + b * kb + h * kh;
    const ELEM* vp = v + b * vb + h * vh;
    const ELEM* qp = q + b * qb + h * qh + (long long)iq * qt;
    float qr[PER], acc[PER];
    #pragma unroll
    for (int t = 0; t < PER; ++t) { qr[t] = tt_load(qp + part + SPLIT * t) * scale; acc[t] = 0.0f; }
    float m = TT_NEG_INF, l = 0.0f;
    for (int j0 = 0; j0 < keys; j0 += BLOCK_K) {
        tt_load_tile(ks, kp, kt, j0, keys, BLOCK_K);
        tt_load_tile(vs, vp, vt, j0, keys, BLOCK_K);
        __syncthreads();
        float s[BLOCK_K];
        float tile_max = TT_NEG_INF;
        #pragma unroll
        for (int c = 0; c < BLOCK_K; ++c) {
            float dot = 0.0f;
            #pragma unroll
            for (int t = 0; t < PER; ++t) dot += qr[t] * ks[c][part + SPLIT * t];
            dot = tt_row_sum(dot);
            s[c] = j0 + c < mine ? dot : TT_NEG_INF;
            tile_max = fmaxf(tile_max, s[c]);
        }
        const float m_new = fmaxf(m, tile_max);       // finite: every row sees key 0 in the first tile
        const float correction = expf(m - m_new);     // exp(-inf) = 0 on the first tile
        l *= correction;
        #pragma unroll
        for (int t = 0; t < PER; ++t) acc[t] *= correction;
        #pragma unroll
        for (int c = 0; c < BLOCK_K; ++c) {
            const float p = expf(s[c] - m_new);       // 0 where masked
            l += p;
            #pragma unroll
            for (int t = 0; t < PER; ++t) acc[t] += p * vs[c][part + SPLIT * t];
        }
        m = m_new;
        __syncthreads();                              // before the next tile overwrites ks, vs
    }
    if (i < T) {
        ELEM* op = out + b * ob + h * oh + (long long)i * ot;
        const float inv = 1.0f / l;
        #pragma unroll
        for (int t = 0; t < PER; ++t) tt_store(op + part + SPLIT * t, acc[t] * inv);
        if (part == 0) lse[(long long)bh * T + i] = m + logf(l);
    }
}

// backward, pass 1: delta = dO . O per row, and dq. Grid and threads as the forward.
extern "C" __global__ void tt_flash_bwd_dq(const ELEM* q, const ELEM* k, const ELEM* v, const ELEM* out,
        const ELEM* g, const float* lse, float* delta, ELEM* dq, int H, int T, int S, int causal, float scale,
        long long qb, long long qh, long long qt, long long kb, long long kh, long long kt,
        long long vb, long long vh, long long vt, long long ob, long long oh, long long ot,
        long long gb, long long gh, long long gt, long long db, long long dh, long long dt) {
    __shared__ float ks[BLOCK_K][HEAD_DIM];
    __shared__ float vs[BLOCK_K][HEAD_DIM];
    const TTQueryRow r = tt_query_row(H, T, S, causal);
    const int bh = r.bh, b = r.b, h = r.h, part = r.part, i = r.i, iq = r.iq, keys = r.keys, mine = r.mine;
    const ELEM* kp = k + b * kb + h * kh;
    const ELEM* vp = v + b * vb + h * vh;
    const ELEM* qp = q + b * qb + h * qh + (long long)iq * qt;
    const ELEM* op = out + b * ob + h * oh + (long long)iq * ot;
    const ELEM* gp = g + b * gb + h * gh + (long long)iq * gt;
    float qr[PER], gr[PER], acc[PER];
    float d_own = 0.0f;
    #pragma unroll
    for (int t = 0; t < PER; ++t) {
        const int d = part + SPLIT * t;
        qr[t] = tt_load(qp + d) * scale;
        gr[t] = tt_load(gp + d);
        d_own += gr[t] * tt_load(op + d);
        acc[t] = 0.0f;
    }
    const float dl = tt_row_sum(d_own);              // delta_i = dO_i . O_i
    const float L = lse[(long long)bh * T + iq];
    for (int j0 = 0; j0 < keys; j0 += BLOCK_K) {
        tt_load_tile(ks, kp, kt, j0, keys, BLOCK_K);
        tt_load_tile(vs, vp, vt, j0, keys, BLOCK_K);
        __syncthreads();
        #pragma unroll
        for (int c = 0; c < BLOCK_K; ++c) {
            float s = 0.0f, dp = 0.0f;
            #pragma unroll
            for (int t = 0; t < PER; ++t) {
                s += qr[t] * ks[c][part + SPLIT * t];
                dp += gr[t] * vs[c][part + SPLIT * t];
            }
            s = tt_row_sum(s);
            dp = tt_row_sum(dp);
            const float p = j0 + c < mine ? expf(s - L) : 0.0f;
            const float ds = p * (dp - dl);
            #pragma unroll
            for (int t = 0; t < PER; ++t) acc[t] += ds * ks[c][part + SPLIT * t];
        }
        __syncthreads();
    }
    if (i < T) {
        ELEM* dqp = dq + b * db + h * dh + (long long)i * dt;
        #pragma unroll
        for (int t = 0; t < PER; ++t) tt_store(dqp + part + SPLIT * t, acc[t] * scale);
        if (part == 0) delta[(long long)bh * T + i] = dl;
    }
}

// backward, pass 2: dk and dv. Grid (ceil(S / BLOCK_KV), B * H), BLOCK_KV * SPLIT threads, one key row
// per thread group, walking QUERY_TILE queries at a time from the first query that sees the block.
extern "C" __global__ void tt_flash_bwd_dkdv(const ELEM* q, const ELEM* k, const ELEM* v, const ELEM* g,
        const float* lse, const float* delta, ELEM* dk, ELEM* dv, int H, int T, int S, int causal, float scale,
        long long qb, long long qh, long long qt, long long kb, long long kh, long long kt,
        long long vb, long long vh, long long vt, long long gb, long long gh, long long gt,
        long long dkb, long long dkh, long long dkt, long long dvb, long long dvh, long long dvt) {
    __shared__ float qs[QUERY_TILE][HEAD_DIM];
    __shared__ float gs[QUERY_TILE][HEAD_DIM];
    __shared__ float ls[QUERY_TILE], ds_[QUERY_TILE];
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int row = threadIdx.x / SPLIT, part = threadIdx.x % SPLIT;
    const int j0 = blockIdx.x * BLOCK_KV, j = j0 + row;
    const int jk = j < S ? j : S - 1;
    const int offset = S - T;
    const int first = causal ? (j0 - offset > 0 ? j0 - offset : 0) : 0;   // earlier queries see none of these keys
    const ELEM* qp = q + b * qb + h * qh;
    const ELEM* gp = g + b * gb + h * gh;
    const ELEM* kp = k + b * kb + h * kh + (long long)jk * kt;
    const ELEM* vp = v + b * vb + h * vh + (long long)jk * vt;
    float kr[PER], vr[PER], dka[PER], dva[PER];
    #pragma unroll
    for (int t = 0; t < PER; ++t) {
        kr[t] = tt_load(kp + part + SPLIT * t);
        vr[t] = tt_load(vp + part + SPLIT * t);
        dka[t] = 0.0f;
        dva[t] = 0.0f;
    }
    for (int i0 = first; i0 < T; i0 += QUERY_TILE) {
        for (int e = threadIdx.x; e < QUERY_TILE * HEAD_DIM; e += blockDim.x) {
            int r = e / HEAD_DIM, d = e % HEAD_DIM, i = i0 + r;
            qs[r][d] = i < T ? tt_load(qp + (long long)i * qt + d) * scale : 0.0f;
            gs[r][d] = i < T ? tt_load(gp + (long long)i * gt + d) : 0.0f;
        }
        for (int r = threadIdx.x; r < QUERY_TILE; r += blockDim.x) {
            int i = i0 + r;
            ls[r] = i < T ? lse[(long long)bh * T + i] : 0.0f;
            ds_[r] = i < T ? delta[(long long)bh * T + i] : 0.0f;
        }
        __syncthreads();
        for (int r = 0; r < QUERY_TILE; ++r) {
            const int i = i0 + r;
            float s = 0.0f, dp = 0.0f;
            #pragma unroll
            for (int t = 0; t < PER; ++t) {
                s += kr[t] * qs[r][part + SPLIT * t];
                dp += vr[t] * gs[r][part + SPLIT * t];
            }
            s = tt_row_sum(s);
            dp = tt_row_sum(dp);
            const bool seen = i < T && (!causal || j <= i + offset);
            const float p = seen ? expf(s - ls[r]) : 0.0f;
            const float ds = p * (dp - ds_[r]);
            #pragma unroll
            for (int t = 0; t < PER; ++t) {
                dva[t] += p * gs[r][part + SPLIT * t];
                dka[t] += ds * qs[r][part + SPLIT * t];
            }
        }
        __syncthreads();
    }
    if (j < S) {
        ELEM* dkp = dk + b * dkb + h * dkh + (long long)j * dkt;
        ELEM* dvp = dv + b * dvb + h * dvh + (long long)j * dvt;
        #pragma unroll
        for (int t = 0; t < PER; ++t) {
            tt_store(dkp + part + SPLIT * t, dka[t]);
            tt_store(dvp + part + SPLIT * t, dva[t]);
        }
    }
}
"""

KINDS = cuda_kernels.ELEMENT_KINDS


def source(kind, head_dim, split=SPLIT, block_q=BLOCK_Q, block_k=BLOCK_K, block_kv=BLOCK_KV, query_tile=QUERY_TILE):
    """``SOURCE`` with its settings defined: ``kind`` "float32", "float16" or "bfloat16"."""
    if head_dim % split or not 0 < head_dim <= MAX_HEAD_DIM or split not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"flash attention: head dim {head_dim} with {split} threads per row is not supported")
    if (block_q * split) % 32 or (block_kv * split) % 32:
        raise ValueError("flash attention: a block must be whole warps")
    defines = dict(ELEM_KIND=KINDS[kind], HEAD_DIM=head_dim, SPLIT=split, BLOCK_Q=block_q, BLOCK_K=block_k,
                   BLOCK_KV=block_kv, QUERY_TILE=query_tile)
    return "".join(f"#define {k} {v}\n" for k, v in defines.items()) + cuda_kernels.ELEMENT_IO + SOURCE


_kind = cuda_kernels.element_kind


# ----- the GPU op -----

def applies(q, k, v, dropout_p):
    """True when the flash kernel is switched on and takes these tensors: CuPy data, no dropout, one dtype
    of float32, float16 or bfloat16, a head dim of at most MAX_HEAD_DIM that SPLIT divides."""
    xp = backend.xp_of(q.data)
    if not cuda_kernels.use(xp, "flash_attention") or dropout_p:
        return False
    D = q.shape[-1]
    return (q.dtype == k.dtype == v.dtype and _kind(q.dtype) is not None and 2 <= q.ndim <= 4
            and 0 < D <= MAX_HEAD_DIM and D % SPLIT == 0 and q.shape[-2] > 0 and k.shape[-2] > 0
            and q.size // (q.shape[-2] * D) < 65536)


def _module(kind, head_dim):
    def build(cp):
        module = cp.RawModule(code=source(kind, head_dim))
        return tuple(module.get_function(n) for n in ("tt_flash_fwd", "tt_flash_bwd_dq", "tt_flash_bwd_dkdv"))
    return cuda_kernels._kernel(f"flash_{kind}_{head_dim}", build)


def _four_d(a):
    """``a`` as (B, H, n, D) with a unit last stride (a view when it can be)."""
    xp = backend.xp_of(a)
    if a.strides[-1] != a.itemsize:
        a = xp.ascontiguousarray(a)
    while a.ndim < 4:
        a = a[None]
    return a


def _strides(a):
    """(batch, head, row) strides of a 4-D array, in elements."""
    return tuple(np.int64(s // a.itemsize) for s in a.strides[:3])


def attention(q, k, v, causal):
    """scaled_dot_product_attention by the flash kernels (``applies`` said yes): a Tensor (..., T, D)."""
    from ..tensor import Tensor
    cp = backend.cupy_module()
    shape = q.shape
    q4, k4, v4 = (_four_d(t.data) for t in (q, k, v))
    B, H, T, D = q4.shape
    S = k4.shape[2]
    fwd, bwd_dq, bwd_dkdv = _module(_kind(q.dtype), D)
    # the result with heads inside tokens, (B, T, H, D) in memory: the usual transpose-and-reshape after is free
    out = cp.empty((B, T, H, D), dtype=q.dtype).transpose(0, 2, 1, 3)
    lse = cp.empty((B * H, T), dtype=np.float32)
    scale = np.float32(1.0 / math.sqrt(D))
    dims = (np.int32(H), np.int32(T), np.int32(S), np.int32(bool(causal)), scale)
    rows_grid = (-(-T // BLOCK_Q), B * H)
    fwd(rows_grid, (BLOCK_Q * SPLIT,), (q4, k4, v4, out, lse) + dims + _strides(q4) + _strides(k4) + _strides(v4)
        + _strides(out))

    def backward(g):
        g4 = _four_d(g)
        dq, dk, dv = (cp.empty(a.shape, dtype=a.dtype) for a in (q4, k4, v4))
        delta = cp.empty((B * H, T), dtype=np.float32)
        bwd_dq(rows_grid, (BLOCK_Q * SPLIT,), (q4, k4, v4, out, g4, lse, delta, dq) + dims + _strides(q4)
               + _strides(k4) + _strides(v4) + _strides(out) + _strides(g4) + _strides(dq))
        bwd_dkdv((-(-S // BLOCK_KV), B * H), (BLOCK_KV * SPLIT,), (q4, k4, v4, g4, lse, delta, dk, dv) + dims
                 + _strides(q4) + _strides(k4) + _strides(v4) + _strides(g4) + _strides(dk) + _strides(dv))
        return dq.reshape(shape), dk.reshape(k.shape), dv.reshape(v.shape)
    return Tensor._make(out.reshape(shape) if len(shape) < 4 else out, (q, k, v), backward,
                        "scaled_dot_product_attention")


def takes_low_precision(dropout_p):
    """For ``amp.attention``: a test whether the flash kernel will take 16-bit q, k, v as they are."""
    return lambda q, k, v: amp.is_low(q.dtype) and applies(q, k, v, dropout_p)
