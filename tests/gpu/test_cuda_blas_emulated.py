"""tinytensor/cuda/blas.py's layout arithmetic, proved on the CPU against an emulated cuBLAS.

``matmul_into`` turns the strides of transposed, sliced and permuted views into cuBLAS's column-major
(transpose flag, leading dimension, batch stride) numbers. Here ``gemmStridedBatchedEx`` is played by NumPy
reading host memory at the very addresses and strides it is given, so a wrong leading dimension, flag,
stride or pointer offset gives a wrong product (or writes outside the output view) on a machine with no GPU.
The same cases run on a real GPU in tests/gpu/test_gpu.py.
"""
import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor.cuda import blas as cuda_blas, kernels as cuda_kernels

from test_device_seam import fake_cuda  # noqa: F401  (a fixture)


def _column_major(address, rows, cols, ld, dtype):
    """The (rows, cols) column-major matrix at ``address`` with leading dimension ``ld``, as a NumPy view."""
    itemsize = np.dtype(dtype).itemsize
    assert ld >= max(1, rows), "cuBLAS requires ld >= rows"
    nbytes = ((cols - 1) * ld + rows) * itemsize
    flat = np.frombuffer((ctypes.c_char * nbytes).from_address(address), dtype=dtype)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (itemsize, ld * itemsize))


class EmulatedCublas:
    """cublasGemmStridedBatchedEx, column-major, on host memory; counts its calls."""
    calls = 0

    def gemmStridedBatchedEx(self, handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA,
                             B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, count, compute, algo):
        dtype = {0: np.float32, 1: np.float64}[Atype]
        assert Atype == Btype == Ctype and transa in (0, 1) and transb in (0, 1)
        size = np.dtype(dtype).itemsize
        self.calls += 1
        for i in range(count):
            a = _column_major(A + i * strideA * size, *((m, k) if transa == 0 else (k, m)), lda, dtype)
            b = _column_major(B + i * strideB * size, *((k, n) if transb == 0 else (n, k)), ldb, dtype)
            c = _column_major(C + i * strideC * size, m, n, ldc, dtype)
            c[...] = (a if transa == 0 else a.T) @ (b if transb == 0 else b.T)


@pytest.fixture
def emulated(monkeypatch):
    blas = EmulatedCublas()
    monkeypatch.setattr(cuda_blas, "_cublas", lambda: (blas, 0))
    monkeypatch.setattr(cuda_blas, "_address", lambda x: x.ctypes.data)
    return blas


def strided_cases(rng, dtype=np.float64, xp=np):
    """(name, a, b, out) views of many layouts, made with ``xp`` (NumPy here, CuPy in tests/gpu/test_gpu.py):
    transposed, sliced, heads-inside-tokens batch axes, no batch, vector-shaped matrices."""
    def arr(*shape):
        return xp.asarray(rng.standard_normal(shape).astype(dtype))
    big = arr(2, 3, 40, 50)
    perm = arr(2, 9, 3, 8).transpose(0, 2, 1, 3)                # (2, 3, 9, 8) with heads inside tokens
    return [
        ("contiguous", arr(4, 5, 6), arr(4, 6, 7), xp.empty((4, 5, 7), dtype)),
        ("a transposed", arr(4, 6, 5).swapaxes(-1, -2), arr(4, 6, 7), xp.empty((4, 5, 7), dtype)),
        ("b transposed", arr(4, 5, 6), arr(4, 7, 6).swapaxes(-1, -2), xp.empty((4, 5, 7), dtype)),
        ("sliced blocks", big[..., 8:24, :30], big[..., :30, 10:20], xp.empty((2, 3, 16, 10), dtype)),
        ("transposed slices", big[..., :30, 8:24].swapaxes(-1, -2), big[..., 10:20, :30].swapaxes(-1, -2),
         xp.empty((2, 3, 16, 10), dtype)),
        ("permuted batch", perm, arr(2, 9, 3, 8).transpose(0, 2, 3, 1), xp.empty((2, 9, 3, 9), dtype).transpose(0, 2, 1, 3)),
        ("no batch", arr(5, 6).T, arr(5, 4), xp.empty((6, 4), dtype)),
        ("vector rows", arr(3, 1, 6), arr(3, 6, 1), xp.empty((3, 1, 1), dtype)),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_layout_gives_the_product(emulated, dtype):
    for name, a, b, out in strided_cases(np.random.default_rng(0), dtype):
        calls = emulated.calls
        assert cuda_blas.matmul_into(a, b, out) is out
        assert emulated.calls > calls, f"{name}: fell back instead of calling cuBLAS"
        np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64),
                                   rtol=1e-12 if dtype == np.float64 else 1e-5, atol=1e-5, err_msg=name)


def test_batch_axes_merge_when_one_stride_walks_them(emulated):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 5, 6))
    cuda_blas.matmul_into(a, b, np.empty((2, 3, 4, 6)))
    assert emulated.calls == 1                      # (2, 3) walked as 6 matrices in one call
    perm = rng.standard_normal((2, 4, 3, 5)).transpose(0, 2, 1, 3)
    cuda_blas.matmul_into(perm, b, np.empty((2, 3, 4, 6)))
    assert emulated.calls == 1 + 2                  # heads inside tokens: one call per batch row


def test_nothing_outside_the_output_view_is_written(emulated):
    rng = np.random.default_rng(2)
    whole = rng.standard_normal((2, 24, 30))
    before = whole.copy()
    out = whole[:, 4:20, 5:15]
    cuda_blas.matmul_into(rng.standard_normal((2, 16, 7)), rng.standard_normal((2, 7, 10)), out)
    outside = np.ones(whole.shape, bool)
    outside[:, 4:20, 5:15] = False
    np.testing.assert_array_equal(whole[outside], before[outside])


def test_layouts_cublas_cannot_take_fall_back(emulated):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 5, 6)), rng.standard_normal((3, 6, 7))
    column_major_out = np.empty((3, 7, 5)).swapaxes(-1, -2)
    cuda_blas.matmul_into(a, b, column_major_out)
    every_other = rng.standard_normal((3, 5, 12))[..., ::2]             # no unit stride in the matrix
    cuda_blas.matmul_into(every_other, b, np.empty((3, 5, 7)))
    ints = np.ones((2, 3, 3), dtype=np.int64)
    cuda_blas.matmul_into(ints, ints, np.empty((2, 3, 3), dtype=np.int64))
    assert emulated.calls == 0
    np.testing.assert_allclose(column_major_out, a @ b)


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(st.integers(1, 3), max_size=2), m=st.integers(1, 6), k=st.integers(1, 6), n=st.integers(1, 6),
       ta=st.booleans(), tb=st.booleans(), pad=st.integers(0, 3), seed=st.integers(0, 2 ** 16))
def test_random_views_give_the_product(batch, m, k, n, ta, tb, pad, seed):
    """Drawn batch shapes, transposed or not, cut out of padded buffers: always NumPy's product."""
    rng = np.random.default_rng(seed)
    blas = EmulatedCublas()
    saved = cuda_blas._cublas, cuda_blas._address
    cuda_blas._cublas, cuda_blas._address = (lambda: (blas, 0)), (lambda x: x.ctypes.data)
    try:
        def view(rows, cols, transposed):          # a (rows, cols) view cut out of a padded buffer
            r, c = (cols, rows) if transposed else (rows, cols)
            x = rng.standard_normal(tuple(batch) + (r + pad, c + pad))[..., pad:, pad:]
            return x.swapaxes(-1, -2) if transposed else x
        a, b = view(m, k, ta), view(k, n, tb)
        whole = rng.standard_normal(tuple(batch) + (m + pad, n + pad))
        out = whole[..., pad:, pad:]
        cuda_blas.matmul_into(a, b, out)
        np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)
        assert blas.calls >= 1
    finally:
        cuda_blas._cublas, cuda_blas._address = saved


def _visible(T, S):
    """(T, S) True where query i may look at key j (queries aligned to the end of the keys)."""
    return np.arange(S)[None, :] <= np.arange(T)[:, None] + (S - T)


def _softmax_kernel(scores, causal):
    """cuda_kernels.attention_softmax_ played by NumPy: like the kernel, it reads only the visible keys."""
    s = scores.view(np.ndarray)
    shown = np.where(_visible(*s.shape[-2:]), s, -np.inf)
    e = np.exp(shown - shown.max(-1, keepdims=True))
    s[...] = e / e.sum(-1, keepdims=True)


def _softmax_backward_kernel(gp, p, causal):
    """cuda_kernels.attention_softmax_backward_ played by NumPy (the unseen corner may hold anything)."""
    g, w = gp.view(np.ndarray), p.view(np.ndarray)
    seen = _visible(*g.shape[-2:])
    g_seen, w_seen = np.where(seen, g, 0), np.where(seen, w, 0)
    g[...] = w_seen * (g_seen - (g_seen * w_seen).sum(-1, keepdims=True))


@pytest.mark.parametrize("softmax_kernel", [False, True], ids=["array softmax", "softmax kernel"])
@pytest.mark.parametrize("T,S,dropout", [(70, 70, 0.0), (40, 75, 0.0), (64, 64, 0.25)])
def test_causal_blocks_through_the_emulated_products_match_the_cpu(fake_cuda, emulated, monkeypatch, T, S,  # noqa: F811
                                                                   dropout, softmax_kernel):
    """Attention on the fake device with its products sent through matmul_into and the GPU's query blocks
    made small: the same values and gradients as on the CPU (where the blocks are NumPy's); with the
    attention-softmax kernel (played by NumPy) too, as on a GPU, where one kernel takes every block's rows."""
    from tinytensor.schedule import attention
    used = {"strided_matmul", "attention_softmax"} if softmax_kernel else {"strided_matmul"}
    monkeypatch.setattr(cuda_kernels, "use", lambda xp, name: name in used and xp is not np)
    monkeypatch.setattr(cuda_kernels, "attention_softmax_", _softmax_kernel)
    monkeypatch.setattr(cuda_kernels, "attention_softmax_backward_", _softmax_backward_kernel)
    monkeypatch.setattr(attention, "GPU_BLOCK", 16)
    assert len(attention.query_blocks(T, S, True, fake_cuda)) == -(-T // 16)
    rng = np.random.default_rng(4)
    data = [rng.standard_normal((2, 3, n, 8)) for n in (T, S, S)]
    grad = rng.standard_normal((2, 3, T, 8))
    results = {}
    for device in ("cpu", "cuda"):
        tt.manual_seed(5)
        if device == "cuda" and dropout:           # the same dropout mask on both: draw it on the host
            monkeypatch.setattr(attention, "dropout_mask", _host_mask_on(fake_cuda))
        q, k, v = (tt.tensor(x, dtype=np.float64, requires_grad=True, device=device) for x in data)
        y = F.scaled_dot_product_attention(q, k, v, causal=True, dropout_p=dropout)
        y.backward(tt.tensor(grad, dtype=np.float64, device=device))
        results[device] = [_host(t) for t in (y.data, q.grad, k.grad, v.grad)]
    blocks = -(-T // 16)
    assert emulated.calls == 6 * blocks     # one cuBLAS call per product: 2 per block forward, 4 backward
    for a, b in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def _host(a):
    from tinytensor import backend
    return backend.to_numpy(a)


def _host_mask_on(fake):
    from tinytensor.ops import dropout
    tt.manual_seed(5)

    def mask(shape, p, dtype, device):
        return fake.asarray(dropout.dropout_mask(shape, p, dtype, "cpu"))
    return mask
