"""Fused CUDA kernels for the hot path of a GPT on CuPy, where one kernel beats a chain of array ops.

Each op in ``tinytensor/ops`` already runs on CuPy through ``xp``; on a GPU every array op is one kernel
launch and one trip through memory, so a chain of ten small ops costs ten launches and ten passes. The
kernels here do the same arithmetic in one pass. They are used only when the data is a real CuPy array
(``use(xp, name)``); the NumPy path never touches this file, and CuPy is imported only inside.

    GELU forward and backward        cupy.ElementwiseKernel (the backward recomputes tanh: nothing stored)
    layer norm forward and d/dx      cupy.RawKernel, one warp (32 threads) per row
    cross-entropy backward           cupy.ElementwiseKernel: softmax - onehot, times the row's scale
    AdamW                            cupy.ElementwiseKernel updating p, m, v in place, one launch per parameter
    attention softmax                cupy.RawKernel, one warp per score row: causal mask and softmax in place,
                                     and its backward, each one pass over the (T, S) scores
    embedding backward               cupyx.scatter_add (atomic adds; cupy.add.at where cupyx lacks it)
    GELU, vectorised (untested)      cupy.RawKernel reading 16 bytes a thread at a time (4 float32 or 8
                                     16-bit numbers), float32 math; only when switched on (config.py)
    strided_matmul                   not a kernel: attention's batched products through cuBLAS on strided
                                     views (tinytensor/cuda/blas.py), so causal blocks and transposes cost
                                     no copies

``TINYTENSOR_CUDA_KERNELS`` turns them off: ``none``, or a comma list of the ones to keep
(``gelu,layer_norm,cross_entropy,adamw,scatter_add,attention_softmax,strided_matmul``); the set in use is
``tinytensor.config.cuda_kernels``. Kernels not yet passed on a real GPU (``config.UNTESTED_CUDA_KERNELS``:
``flash_attention`` in cuda/flash_attention.py, ``gelu_vectorized`` here) run only when named, as in
``TINYTENSOR_CUDA_KERNELS=all,flash_attention,gelu_vectorized``.
``tests/gpu/test_gpu.py`` compares each with the array-op path on a GPU.
"""
import math

import numpy as np

from .. import config

NAMES = config.CUDA_KERNEL_NAMES

_C = math.sqrt(2.0 / math.pi)
_kernels = {}


def use(xp, name):
    """True when ``xp`` is the real cupy module and kernel ``name`` is enabled (``config.cuda_kernels``)."""
    return xp is not np and name in config.cuda_kernels and getattr(xp, "__name__", "") == "cupy"


def __getattr__(name):
    if name == "enabled":               # the old name of config.cuda_kernels, still readable
        return config.cuda_kernels
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _kernel(name, build):
    if name not in _kernels:
        _kernels[name] = build(__import__("cupy"))
    return _kernels[name]


# ----- GELU (tanh form) -----

# the arithmetic type of T: float for float and for the 16-bit types autocast computes in, double for double
ACCUMULATE_PREAMBLE = """
template <typename T> struct tt_acc { typedef float type; };
template <> struct tt_acc<double> { typedef double type; };
"""
GELU_FORWARD = f"""
typedef typename tt_acc<T>::type A;
A a = (A)x;
A u = (A){_C!r} * (a + (A)0.044715 * a * a * a);
y = (T)((A)0.5 * a * ((A)1 + tanh(u)));
"""
# d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2), t = tanh(c (x + 0.044715 x^3))
GELU_BACKWARD = f"""
typedef typename tt_acc<T>::type A;
A a = (A)x;
A a2 = a * a;
A t = tanh((A){_C!r} * (a + (A)0.044715 * a2 * a));
dx = (T)((A)g * (A)0.5 * (((A)1 + t) + a * ((A)1 - t * t) * (A){_C!r} * ((A)1 + (A)(3 * 0.044715) * a2)));
"""


def gelu(x):
    """F.gelu on a CuPy tensor: one kernel forward, one backward, nothing kept but the input."""
    from ..tensor import Tensor
    fwd = _kernel("gelu_fwd", lambda cp: cp.ElementwiseKernel("T x", "T y", GELU_FORWARD, "tt_gelu_fwd",
                                                              preamble=ACCUMULATE_PREAMBLE))
    bwd = _kernel("gelu_bwd", lambda cp: cp.ElementwiseKernel("T x, T g", "T dx", GELU_BACKWARD, "tt_gelu_bwd",
                                                              preamble=ACCUMULATE_PREAMBLE))
    d = x.data

    def backward(g):
        return (bwd(d, g),)
    return Tensor._make(fwd(d), (x,), backward, "gelu")


# ----- GELU, vectorised: 16 bytes per thread per load (untested on a GPU: off unless named) -----

# ELEM and its loads and stores as float (0 float32, 1 float16, 2 bfloat16), shared with flash_attention.py
ELEMENT_IO = r"""
#if ELEM_KIND == 0
typedef float ELEM;
__device__ __forceinline__ float tt_load(const float* p) { return *p; }
__device__ __forceinline__ void tt_store(float* p, float v) { *p = v; }
#elif ELEM_KIND == 2
typedef unsigned short ELEM;                    // bfloat16: the top half of a float32
__device__ __forceinline__ float tt_load(const ELEM* p) { return __uint_as_float(((unsigned int)*p) << 16); }
__device__ __forceinline__ void tt_store(ELEM* p, float v) {
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) { *p = (ELEM)((u >> 16) | 0x40u); return; }   // nan stays nan
    u += 0x7fffu + ((u >> 16) & 1u);                                                       // round to nearest even
    *p = (ELEM)(u >> 16);
}
#else
typedef unsigned short ELEM;                    // float16
#if defined(__CUDACC__) || defined(__CUDACC_RTC__) || defined(__CUDA_ARCH__)   // nvcc, NVRTC (CuPy)
__device__ __forceinline__ float tt_load(const ELEM* p) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(*p)); return f; }
__device__ __forceinline__ void tt_store(ELEM* p, float v) { ELEM h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v)); *p = h; }
#else
__device__ __forceinline__ float tt_load(const ELEM* p) { _Float16 h; memcpy(&h, p, 2); return (float)h; }
__device__ __forceinline__ void tt_store(ELEM* p, float v) { _Float16 h = (_Float16)v; memcpy(p, &h, 2); }
#endif
#endif
"""

GELU_VECTORIZED_SOURCE = r"""
// VEC numbers of n in each 16-byte load (4 float32, 8 16-bit); the last n % VEC by the first threads
#if ELEM_KIND == 0
#define VEC 4
typedef float4 VTYPE;
#else
#define VEC 8
typedef uint4 VTYPE;
#endif
#define TT_C 0.7978845608028654f

__device__ __forceinline__ float tt_gelu(float x) {
    return 0.5f * x * (1.0f + tanhf(TT_C * (x + 0.044715f * x * x * x)));
}
// d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2), t = tanh(c (x + 0.044715 x^3))
__device__ __forceinline__ float tt_gelu_grad(float x) {
    const float x2 = x * x, t = tanhf(TT_C * (x + 0.044715f * x2 * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * TT_C * (1.0f + 3.0f * 0.044715f * x2);
}

extern "C" __global__ void tt_gelu_vec_fwd(const ELEM* x, ELEM* y, long long n) {
    const long long vectors = n / VEC, step = (long long)gridDim.x * blockDim.x;
    const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    for (long long i = first; i < vectors; i += step) {
        VTYPE a = reinterpret_cast<const VTYPE*>(x)[i], r;
        const ELEM* xa = reinterpret_cast<const ELEM*>(&a);
        ELEM* ya = reinterpret_cast<ELEM*>(&r);
#pragma unroll
        for (int e = 0; e < VEC; ++e) tt_store(ya + e, tt_gelu(tt_load(xa + e)));
        reinterpret_cast<VTYPE*>(y)[i] = r;
    }
    const long long tail = vectors * VEC + first;
    if (tail < n) tt_store(y + tail, tt_gelu(tt_load(x + tail)));
}

extern "C" __global__ void tt_gelu_vec_bwd(const ELEM* x, const ELEM* g, ELEM* dx, long long n) {
    const long long vectors = n / VEC, step = (long long)gridDim.x * blockDim.x;
    const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    for (long long i = first; i < vectors; i += step) {
        VTYPE a = reinterpret_cast<const VTYPE*>(x)[i], b = reinterpret_cast<const VTYPE*>(g)[i], r;
        const ELEM* xa = reinterpret_cast<const ELEM*>(&a);
        const ELEM* ga = reinterpret_cast<const ELEM*>(&b);
        ELEM* da = reinterpret_cast<ELEM*>(&r);
#pragma unroll
        for (int e = 0; e < VEC; ++e) tt_store(da + e, tt_load(ga + e) * tt_gelu_grad(tt_load(xa + e)));
        reinterpret_cast<VTYPE*>(dx)[i] = r;
    }
    const long long tail = vectors * VEC + first;
    if (tail < n) tt_store(dx + tail, tt_load(g + tail) * tt_gelu_grad(tt_load(x + tail)));
}
"""
ELEMENT_KINDS = {"float32": 0, "float16": 1, "bfloat16": 2}     # ELEM_KIND of each


def element_kind(dtype):
    """"float32", "float16" or "bfloat16" for the dtypes the ELEMENT_IO kernels take, else None."""
    if dtype == np.float32:
        return "float32"
    if dtype == np.float16:
        return "float16"
    return "bfloat16" if str(dtype) == "bfloat16" else None


def gelu_vectorized_source(kind):
    """GELU_VECTORIZED_SOURCE for "float32", "float16" or "bfloat16" data."""
    return f"#define ELEM_KIND {ELEMENT_KINDS[kind]}\n" + ELEMENT_IO + GELU_VECTORIZED_SOURCE


def gelu_vectorized_supported(a):
    """C-contiguous float32/float16/bfloat16 data starting on a 16-byte boundary."""
    return (element_kind(a.dtype) is not None and a.flags.c_contiguous and a.size > 0
            and a.data.ptr % 16 == 0)


def gelu_vectorized(x):
    """F.gelu on a CuPy tensor by the vectorised kernels (``gelu_vectorized_supported(x.data)``)."""
    import cupy as cp
    from ..tensor import Tensor
    kind = element_kind(x.dtype)
    fwd, bwd = _kernel(f"gelu_vec_{kind}", lambda cp: (lambda m: (m.get_function("tt_gelu_vec_fwd"),
                                                                   m.get_function("tt_gelu_vec_bwd")))(
        cp.RawModule(code=gelu_vectorized_source(kind))))
    d = x.data
    n = d.size
    vec = 4 if kind == "float32" else 8
    grid = (min(65535, max(1, -(-(n // vec) // 256))),)
    y = cp.empty_like(d)
    fwd(grid, (256,), (d, y, np.int64(n)))

    def backward(g):
        g = cp.ascontiguousarray(g)
        if g.data.ptr % 16:
            g = g.copy()
        dx = cp.empty_like(d)
        bwd(grid, (256,), (d, g, dx, np.int64(n)))
        return (dx,)
    return Tensor._make(y, (x,), backward, "gelu")


# ----- layer norm -----

LAYER_NORM_SOURCE = r"""
#define WARP_SUM(v) for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o)

extern "C" __global__ void tt_layer_norm_fwd_REAL(const REAL* x, const REAL* w, const REAL* b, REAL* y,
                                                  REAL* mean, REAL* rstd, int N, int D, REAL eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;   // one warp per row
    int lane = threadIdx.x % 32;
    if (row >= N) return;                                            // the whole warp leaves together
    const REAL* xr = x + (long long)row * D;
    REAL s = 0;
    for (int i = lane; i < D; i += 32) s += xr[i];
    WARP_SUM(s);
    REAL m = s / D;
    REAL v = 0;
    for (int i = lane; i < D; i += 32) { REAL c = xr[i] - m; v += c * c; }
    WARP_SUM(v);
    REAL r = (REAL)1 / sqrt(v / D + eps);
    REAL* yr = y + (long long)row * D;
    for (int i = lane; i < D; i += 32) yr[i] = (xr[i] - m) * r * w[i] + b[i];
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}

// with gh = g * w and xhat = (x - mean) * rstd:  dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))
extern "C" __global__ void tt_layer_norm_bwd_REAL(const REAL* x, const REAL* w, const REAL* g,
                                                  const REAL* mean, const REAL* rstd, REAL* dx, int N, int D) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= N) return;
    const REAL* xr = x + (long long)row * D;
    const REAL* gr = g + (long long)row * D;
    REAL m = mean[row], r = rstd[row];
    REAL a = 0, c = 0;
    for (int i = lane; i < D; i += 32) { REAL gh = gr[i] * w[i]; a += gh; c += gh * (xr[i] - m) * r; }
    WARP_SUM(a);
    WARP_SUM(c);
    a /= D;
    c /= D;
    REAL* dxr = dx + (long long)row * D;
    for (int i = lane; i < D; i += 32) dxr[i] = r * (gr[i] * w[i] - a - (xr[i] - m) * r * c);
}

// dw = sum over rows of g * xhat, db = sum over rows of g: thread per column (reads along a row are
// coalesced), blockIdx.y picks a chunk of rows; pw, pb (chunks, D) hold each chunk's sums
extern "C" __global__ void tt_layer_norm_dwdb_REAL(const REAL* x, const REAL* g, const REAL* mean,
                                                   const REAL* rstd, REAL* pw, REAL* pb, int N, int D, int rows) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= D) return;
    int r0 = blockIdx.y * rows, r1 = min(N, r0 + rows);
    REAL sw = 0, sb = 0;
    for (int r = r0; r < r1; ++r) {
        long long at = (long long)r * D + col;
        REAL gv = g[at];
        sw += gv * (x[at] - mean[r]) * rstd[r];
        sb += gv;
    }
    pw[(long long)blockIdx.y * D + col] = sw;
    pb[(long long)blockIdx.y * D + col] = sb;
}
"""
_ROWS_PER_BLOCK = 8      # 256 threads = 8 warps = 8 rows


def _rows_launch(R):
    """(grid, block) for the one-warp-per-row kernels over R rows."""
    return ((R + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK,), (32 * _ROWS_PER_BLOCK,)


def _layer_norm_module(dtype):
    real = "float" if dtype == np.float32 else "double"

    def build(cp):
        module = cp.RawModule(code=LAYER_NORM_SOURCE.replace("REAL", real))
        return tuple(module.get_function(f"tt_layer_norm_{part}_{real}") for part in ("fwd", "bwd", "dwdb"))
    return _kernel(f"layer_norm_{real}", build)


def layer_norm_supported(x, weight, bias):
    """The kernel covers the GPT case: float32/64 data with both a weight and a bias."""
    return weight is not None and bias is not None and x.dtype in (np.float32, np.float64) and x.size > 0


def layer_norm(x, weight, bias, eps):
    """F.layer_norm on CuPy tensors (weight and bias given, checked by the caller)."""
    import cupy as cp
    from ..tensor import Tensor
    fwd, bwd, dwdb = _layer_norm_module(x.dtype)
    D = x.shape[-1]
    d = cp.ascontiguousarray(x.data).reshape(-1, D)
    N = d.shape[0]
    w, b = cp.ascontiguousarray(weight.data), cp.ascontiguousarray(bias.data)
    y = cp.empty_like(d)
    mean = cp.empty(N, dtype=d.dtype)
    rstd = cp.empty(N, dtype=d.dtype)
    grid, block = _rows_launch(N)
    fwd(grid, block, (d, w, b, y, mean, rstd, np.int32(N), np.int32(D), d.dtype.type(eps)))

    def backward(g):
        g2 = cp.ascontiguousarray(g).reshape(-1, D)
        gx = None
        if x.requires_grad:
            gx = cp.empty_like(d)
            bwd(grid, block, (d, w, g2, mean, rstd, gx, np.int32(N), np.int32(D)))
            gx = gx.reshape(x.shape)
        gw = gb = None
        if weight.requires_grad or bias.requires_grad:
            rows = max(16, -(-N // 128))                # about 128 chunks of rows: enough blocks to fill the GPU
            chunks = -(-N // rows)
            pw = cp.empty((chunks, D), dtype=d.dtype)
            pb = cp.empty((chunks, D), dtype=d.dtype)
            dwdb(((D + 255) // 256, chunks), (256,), (d, g2, mean, rstd, pw, pb, np.int32(N), np.int32(D),
                                                    np.int32(rows)))
            gw = pw.sum(axis=0) if weight.requires_grad else None
            gb = pb.sum(axis=0) if bias.requires_grad else None
        return gx, gw, gb
    return Tensor._make(y.reshape(x.shape), (x, weight, bias), backward, "layer_norm")


# ----- attention softmax -----

ATTENTION_SOFTMAX_SOURCE = r"""
#define WARP_SUM(v) for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o)
#define WARP_MAX(v) for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o))

// Keys a score row may look at: all S, or with the causal mask keys 0 .. i + (S - T) for query i
// (queries are aligned to the end of the keys, as with a KV cache). Row r of the (R, S) scores is
// query r % T of its (batch, head).
__device__ __forceinline__ int tt_visible_keys(int row, int T, int S, int causal) {
    return causal ? row % T + (S - T) + 1 : S;
}

// scores (R, S) -> softmax over each row's visible keys, 0 for the keys it must not see, in place
extern "C" __global__ void tt_attention_softmax_fwd_REAL(REAL* s, int R, int T, int S, int causal) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;    // one warp per row
    int lane = threadIdx.x % 32;
    if (row >= R) return;                                            // the whole warp leaves together
    REAL* sr = s + (long long)row * S;
    int n = tt_visible_keys(row, T, S, causal);                      // at least 1
    REAL m = sr[0];
    for (int j = lane; j < n; j += 32) m = fmax(m, sr[j]);
    WARP_MAX(m);
    REAL total = 0;
    for (int j = lane; j < n; j += 32) { REAL e = exp(sr[j] - m); sr[j] = e; total += e; }
    WARP_SUM(total);
    REAL inv = (REAL)1 / total;
    for (int j = lane; j < n; j += 32) sr[j] *= inv;
    for (int j = n + lane; j < S; j += 32) sr[j] = 0;
}

// softmax backward in place: gp <- p * (gp - sum(gp * p)) over each row (0 where p is masked)
extern "C" __global__ void tt_attention_softmax_bwd_REAL(REAL* gp, const REAL* p, int R, int T, int S, int causal) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= R) return;
    REAL* gr = gp + (long long)row * S;
    const REAL* pr = p + (long long)row * S;
    int n = tt_visible_keys(row, T, S, causal);
    REAL dot = 0;
    for (int j = lane; j < n; j += 32) dot += gr[j] * pr[j];
    WARP_SUM(dot);
    for (int j = lane; j < n; j += 32) gr[j] = pr[j] * (gr[j] - dot);
    for (int j = n + lane; j < S; j += 32) gr[j] = 0;
}
"""


def _attention_softmax_module(dtype):
    real = "float" if dtype == np.float32 else "double"

    def build(cp):
        module = cp.RawModule(code=ATTENTION_SOFTMAX_SOURCE.replace("REAL", real))
        return (module.get_function(f"tt_attention_softmax_fwd_{real}"),
                module.get_function(f"tt_attention_softmax_bwd_{real}"))
    return _kernel(f"attention_softmax_{real}", build)


def attention_softmax_supported(scores):
    """The kernel takes C-contiguous float32/64 score rows that fit int indexing."""
    return (scores.dtype in (np.float32, np.float64) and scores.flags.c_contiguous and 0 < scores.size < 2 ** 31)


def attention_softmax_(scores, causal):
    """Softmax over the last axis of scores (..., T, S), in place, keys j > i + (S - T) masked when causal."""
    fwd, _ = _attention_softmax_module(scores.dtype)
    T, S = scores.shape[-2:]
    R = scores.size // S
    fwd(*_rows_launch(R), (scores, np.int32(R), np.int32(T), np.int32(S), np.int32(bool(causal))))
    return scores


def attention_softmax_backward_(gp, p, causal):
    """gp <- p * (gp - sum(gp * p)) over the last axis, in place; gp and p (..., T, S) alike."""
    _, bwd = _attention_softmax_module(gp.dtype)
    T, S = gp.shape[-2:]
    R = gp.size // S
    bwd(*_rows_launch(R), (gp, p, np.int32(R), np.int32(T), np.int32(S), np.int32(bool(causal))))
    return gp


# ----- cross-entropy backward -----

ROW_STATS_SOURCE = r"""
// one block per row of x (N, C): its max m and log(sum(exp(x - m))), in one read of the row. Each thread
// keeps a running max and a sum of exp(x - its max), rescaled when the max grows; then the threads merge.
extern "C" __global__ void tt_row_max_lse_REAL(const REAL* x, REAL* m_out, REAL* lse_out, int C) {
    __shared__ REAL shared_m[32], shared_s[32];
    const REAL* xr = x + (long long)blockIdx.x * C;
    REAL m = xr[0], s = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        REAL v = xr[j];
        if (v > m) { s = s * exp(m - v) + (REAL)1; m = v; } else if (!isinf(v)) { s += exp(v - m); }  // -inf adds 0
    }
    for (int o = 16; o > 0; o >>= 1) {                               // merge within the warp
        REAL m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        REAL mm = fmax(m, m2);
        s = (s == 0 ? s : s * exp(m - mm)) + (s2 == 0 ? s2 : s2 * exp(m2 - mm));
        m = mm;
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    if (lane == 0) { shared_m[warp] = m; shared_s[warp] = s; }
    __syncthreads();
    if (warp == 0) {                                                 // merge the warps
        m = lane < warps ? shared_m[lane] : shared_m[0];
        s = lane < warps ? shared_s[lane] : (REAL)0;
        for (int o = 16; o > 0; o >>= 1) {
            REAL m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
            REAL mm = fmax(m, m2);
            s = (s == 0 ? s : s * exp(m - mm)) + (s2 == 0 ? s2 : s2 * exp(m2 - mm));   // 0 stays 0 (also at -inf)
            m = mm;
        }
        if (lane == 0) { m_out[blockIdx.x] = m; lse_out[blockIdx.x] = log(s); }
    }
}
"""


def row_max_lse(x):
    """Per row of x (N, C), float32/64: the max (N, 1) and log(sum(exp(x - max))) (N,), one read of x."""
    import cupy as cp
    real = "float" if x.dtype == np.float32 else "double"
    k = _kernel(f"row_stats_{real}", lambda cp: cp.RawModule(code=ROW_STATS_SOURCE.replace("REAL", real))
                .get_function(f"tt_row_max_lse_{real}"))
    x = cp.ascontiguousarray(x)
    N, C = x.shape
    m = cp.empty((N, 1), dtype=x.dtype)
    lse_m = cp.empty(N, dtype=x.dtype)
    k((N,), (256,), (x, m, lse_m, np.int32(C)))
    return m, lse_m


# shifted by the row max first, as the array path does, so large logits keep their precision
CROSS_ENTROPY_BACKWARD = "dx = (exp((x - m) - lse_m) - (col == t ? (T)1 : (T)0)) * s"


def cross_entropy_backward(x, m, lse_m, t, scale):
    """(softmax(x) - onehot(t)) * scale per row, in one pass: x (N, C), row max m (N, 1),
    lse_m = log sum exp(x - m) (N,), targets t (N,) ints, scale (N,)."""
    import cupy as cp
    k = _kernel("xent_bwd", lambda cp: cp.ElementwiseKernel("T x, T m, T lse_m, I t, T s, I col", "T dx",
                                                            CROSS_ENTROPY_BACKWARD, "tt_xent_bwd"))
    col = cp.arange(x.shape[1], dtype=t.dtype)[None, :]             # (1, C): the class of each column
    return k(x, m.reshape(-1, 1), lse_m.astype(x.dtype, copy=False)[:, None], t[:, None],
             scale.astype(x.dtype, copy=False)[:, None], col)


# ----- AdamW -----

ADAMW_UPDATE = """
m = b1 * m + c1 * g;
v = b2 * v + c2 * g * g;
p = p * decay - step_size * (m / (sqrt(v) * bc2 + eps));
"""


def adamw_update(p, g, m, v, b1, b2, lr, wd, eps, t):
    """One AdamW step of one parameter, p, m and v updated in place, the same formula as optim.AdamW."""
    k = _kernel("adamw", lambda cp: cp.ElementwiseKernel(
        "T g, T b1, T c1, T b2, T c2, T decay, T step_size, T bc2, T eps", "T p, T m, T v", ADAMW_UPDATE,
        "tt_adamw"))
    one = p.dtype.type
    k(g, one(b1), one(1 - b1), one(b2), one(1 - b2), one(1 - lr * wd if wd else 1.0),
      one(lr / (1 - b1 ** t)), one(1 / math.sqrt(1 - b2 ** t)), one(eps), p, m, v)


# ----- embedding backward -----

def scatter_add(xp, out, index, values):
    """``out[index] += values`` with repeated indices adding up (NumPy's add.at) on a device array."""
    if use(xp, "scatter_add"):
        try:
            import cupyx
            cupyx.scatter_add(out, index, values)
            return out
        except (ImportError, AttributeError):
            pass
    xp.add.at(out, index, values)       # CuPy 13+ has ufunc.at; the fake device of the tests delegates to NumPy
    return out
