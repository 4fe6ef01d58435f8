"""Batched matrix products on CuPy views straight through cuBLAS: no copy of a transposed or sliced operand.

``cupy.matmul`` makes every operand of a batched product C-contiguous first, so attention's ``k^T``, ``p^T``
and the blocks of a causal score matrix would each be copied, (T, S) matrices included. cuBLAS takes each
matrix as a pointer, a leading dimension, a flag for "transposed" and a stride between the matrices of a
batch, which describes all of those views as they lie. ``matmul_into`` builds those numbers from the
arrays' strides and falls back to ``cupy.matmul`` for anything it cannot describe.

cuBLAS counts in column-major order: a row-major matrix is, to it, the transpose lying in the same bytes.
So ``out = a @ b`` (row-major) is asked for as ``out^T = b^T a^T`` (column-major), with no data moved.
"""
import itertools

import numpy as np

from .. import backend

_OP_N, _OP_T = 0, 1
_CUDA_R_32F, _CUDA_R_64F = 0, 1
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32, _COMPUTE_64F = 68, 77, 70
_GEMM_DEFAULT = -1


def _matrix(shape, strides):
    """How cuBLAS sees a (rows, cols) matrix with element strides: (transposed?, leading dimension), where
    "transposed" means its bytes, read column-major, hold the matrix's transpose (row-major data). None when
    neither axis has unit stride."""
    rows, cols = shape
    row_stride, col_stride = strides
    if cols == 1 or col_stride == 1:                     # row-major: column-major (cols, rows), ld >= cols
        if rows == 1 or row_stride >= cols:
            return True, max(row_stride, cols, 1)
    if rows == 1 or row_stride == 1:                     # column-major (rows, cols), ld >= rows
        if cols == 1 or col_stride >= rows:
            return False, max(col_stride, rows, 1)
    return None


def _batch_layout(lead, stride_sets):
    """Split the batch axes ``lead`` into an outer part looped over in Python and an inner run that cuBLAS
    walks with one stride per operand: (outer shape, outer strides per operand, count, inner stride per
    operand). The inner run is the longest tail of axes over which every operand steps evenly."""
    if not lead:
        return (), [() for _ in stride_sets], 1, [0 for _ in stride_sets]
    j = len(lead) - 1
    count = lead[j]
    while j > 0 and all(s[j - 1] == count * s[len(lead) - 1] or lead[j - 1] == 1 for s in stride_sets):
        j -= 1
        count *= lead[j]
    inner = [s[len(lead) - 1] for s in stride_sets]
    return lead[:j], [s[:j] for s in stride_sets], count, inner


def _address(x):
    """The device address of x's first element (a CuPy view's pointer already includes its offset)."""
    return x.data.ptr


def _cublas():
    """CuPy's cuBLAS bindings and this thread's handle on the current device."""
    from cupy_backends.cuda.libs import cublas
    return cublas, backend.cupy_module().cuda.device.get_cublas_handle()


def supported(a, b, out):
    """Whether ``matmul_into`` can hand these to cuBLAS as they are."""
    return (a.dtype == b.dtype == out.dtype and a.dtype in (np.float32, np.float64) and a.ndim == b.ndim == out.ndim
            and a.ndim >= 2 and a.shape[:-2] == b.shape[:-2] == out.shape[:-2] and a.size and b.size and out.size
            and out.shape[-1] == b.shape[-1] and out.shape[-2] == a.shape[-2] and a.shape[-1] == b.shape[-2])


def matmul_into(a, b, out):
    """``out[...] = a @ b`` for CuPy arrays with the same batch axes, without copying strided operands.
    ``out`` must not share memory with ``a`` or ``b`` (attention's never do; cupy.matmul would copy)."""
    xp = backend.xp_of(out)
    if not supported(a, b, out):
        xp.matmul(a, b, out=out)
        return out
    size = a.itemsize
    strides = [tuple(s // size for s in x.strides) for x in (a, b, out)]
    if any(s * size != t for x, st in zip((a, b, out), strides) for s, t in zip(st, x.strides)):
        xp.matmul(a, b, out=out)                        # strides that are not whole elements
        return out
    la, lb, lc = (_matrix(x.shape[-2:], st[-2:]) for x, st in zip((a, b, out), strides))
    if la is None or lb is None or lc is None or not lc[0]:
        xp.matmul(a, b, out=out)                        # out must be row-major for the transposed product
        return out
    lead = out.shape[:-2]
    outer, outer_strides, count, inner = _batch_layout(lead, [st[:-2] for st in strides])
    cublas, handle = _cublas()
    single = a.dtype == np.float32
    dtype = _CUDA_R_32F if single else _CUDA_R_64F
    compute = (_COMPUTE_32F_FAST_TF32 if backend.tf32_enabled() else _COMPUTE_32F) if single else _COMPUTE_64F
    one, zero = np.array(1, dtype=a.dtype), np.array(0, dtype=a.dtype)
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    # out^T (N x M) = op(b) (N x K) times op(a) (K x M): a row-major operand is already its transpose
    op_b = _OP_N if lb[0] else _OP_T
    op_a = _OP_N if la[0] else _OP_T
    for index in itertools.product(*(range(n) for n in outer)):
        pa, pb, pc = (_address(x) + size * sum(i * s for i, s in zip(index, st))
                      for x, st in zip((a, b, out), outer_strides))
        cublas.gemmStridedBatchedEx(handle, op_b, op_a, N, M, K, one.ctypes.data,
                                    pb, dtype, lb[1], inner[1], pa, dtype, la[1], inner[0],
                                    zero.ctypes.data, pc, dtype, lc[1], inner[2], count, compute, _GEMM_DEFAULT)
    return out
