"""Attention's GPU schedule (query blocks, one cuBLAS call per product, the fused softmax kernel) proved on
the CPU: the fake device of test_device_seam, cuBLAS emulated as in test_cuda_blas_emulated, and the
attention-softmax kernel played by NumPy that, like the kernel, reads only each row's visible keys. The
same cases run on a real GPU in tests/test_gpu.py."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import backend, cuda_kernels

from test_cuda_blas_emulated import emulated  # noqa: F401  (a fixture)
from test_device_seam import fake_cuda  # noqa: F401  (a fixture)


def _visible(T, S, causal):
    """(T, S) True where query i may look at key j (queries aligned to the end of the keys)."""
    return np.arange(S)[None, :] <= np.arange(T)[:, None] + (S - T) if causal else np.ones((T, S), bool)


def _softmax_kernel(scores, causal):
    s = scores.view(np.ndarray)
    seen = _visible(*s.shape[-2:], causal)
    e = np.exp(np.where(seen, s, -np.inf) - np.where(seen, s, -np.inf).max(-1, keepdims=True))
    s[...] = e / e.sum(-1, keepdims=True)
    return scores


def _softmax_backward_kernel(gp, p, causal):
    g, w = gp.view(np.ndarray), p.view(np.ndarray)
    seen = _visible(*g.shape[-2:], causal)
    dot = np.where(seen, g * np.where(seen, w, 0), 0).sum(-1, keepdims=True)
    g[...] = np.where(seen, w * (np.where(seen, g, 0) - dot), 0)
    return gp


@pytest.mark.parametrize("T,S,dropout", [(70, 70, 0.0), (40, 75, 0.0), (64, 64, 0.25), (5, 9, 0.0)])
def test_the_gpu_schedule_with_the_fused_softmax_matches_the_cpu(fake_cuda, emulated, monkeypatch, T, S,  # noqa: F811
                                                                 dropout):
    from tinytensor.ops import attention, dropout as dropout_op
    monkeypatch.setattr(cuda_kernels, "use", lambda xp, name: xp is fake_cuda
                        and name in ("strided_matmul", "attention_softmax"))
    monkeypatch.setattr(cuda_kernels, "attention_softmax_", _softmax_kernel)
    monkeypatch.setattr(cuda_kernels, "attention_softmax_backward_", _softmax_backward_kernel)
    monkeypatch.setattr(attention, "GPU_BLOCK", 16)
    rng = np.random.default_rng(4)
    data = [rng.standard_normal((2, 3, n, 8)) for n in (T, S, S)]
    grad = rng.standard_normal((2, 3, T, 8))
    results = {}
    for device in ("cpu", "cuda"):
        tt.manual_seed(5)
        if device == "cuda":                       # the same dropout mask on both: drawn on the host
            monkeypatch.setattr(attention, "dropout_mask", lambda shape, p, dtype, dev: fake_cuda.asarray(
                dropout_op.dropout_mask(shape, p, dtype, "cpu")))
        q, k, v = (tt.tensor(x, dtype=np.float64, requires_grad=True, device=device) for x in data)
        y = F.scaled_dot_product_attention(q, k, v, causal=True, dropout_p=dropout)
        y.backward(tt.tensor(grad, dtype=np.float64, device=device))
        results[device] = [backend.to_numpy(t) for t in (y.data, q.grad, k.grad, v.grad)]
    blocks = len(attention.query_blocks(T, S, True, fake_cuda))
    assert emulated.calls == 6 * blocks            # 2 products per block forward, 4 backward
    for a, b in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
