"""The same engine on a real GPU (CuPy): every op family, the fused kernels, a GPT step, generation, save/load.

Each test runs once per GPU device from ``devices()`` (tests/conftest.py) and skips cleanly where CuPy sees no
GPU (CI). ``benchmarks/gpu_check.sh`` runs this file on a GPU machine. The fake-device proof of the same seam,
which runs everywhere, is ``tests/test_device_seam.py``; the op cases are shared with it.
"""
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import backend, config, nn, optim
from tinytensor.cuda import kernels as cuda_kernels

from test_cuda_blas_emulated import strided_cases
from test_device_seam import OP_CASES, RANDOM_CASES, run_case


def _root_conftest():
    """tests/conftest.py by its path ("import conftest" may find tests/gpt/conftest.py instead)."""
    spec = importlib.util.spec_from_file_location("_tests_root_conftest", Path(__file__).parents[1] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


devices = _root_conftest().devices

GPU_DEVICES = [d for d in devices() if d != "cpu"]
NO_GPU = "no GPU visible to CuPy (CuPy missing or no CUDA device; CI has none): run benchmarks/gpu_check.sh on a GPU machine"
needs_gpu = pytest.mark.skipif(not GPU_DEVICES, reason=NO_GPU)
on_gpus = pytest.mark.parametrize("device", GPU_DEVICES or ["cuda"])


def is_gpu_array(a):
    return backend._cupy is not None and isinstance(a, backend._cupy.ndarray)


@pytest.fixture
def kernels(monkeypatch):
    """Switch the fused kernels on or off for one test: ``kernels(set_of_names)``."""
    return lambda names: monkeypatch.setattr(config, "cuda_kernels", set(names))


# ----- every op family, forward and backward, against the CPU in float64 -----

@needs_gpu
@on_gpus
@pytest.mark.parametrize("case", OP_CASES + RANDOM_CASES, ids=lambda c: c[0])
def test_op_family_matches_the_cpu_in_float64(device, case):
    out_c, ins_c = run_case(case, "cpu")
    out_d, ins_d = run_case(case, device)
    assert out_d.device == "cuda" and is_gpu_array(out_d.data) and out_d.dtype == np.float64
    np.testing.assert_allclose(out_d.numpy(), out_c.data, rtol=1e-9, atol=1e-11)
    for i, (a, b) in enumerate(zip(ins_c, ins_d)):
        assert is_gpu_array(b.grad) and b.grad.dtype == np.float64, f"input {i}"
        np.testing.assert_allclose(backend.to_numpy(b.grad), a.grad, rtol=1e-9, atol=1e-11, err_msg=f"input {i}")


@needs_gpu
@on_gpus
@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: c[0])
def test_op_family_in_float32_is_close_to_float64(device, case):
    tt.set_tf32(False)
    out_c, ins_c = run_case(case, "cpu")
    out_d, ins_d = run_case(case, device, dtype=np.float32)
    assert out_d.dtype == np.float32
    np.testing.assert_allclose(out_d.numpy(), out_c.data, rtol=2e-4, atol=2e-5)
    for a, b in zip(ins_c, ins_d):
        assert b.grad.dtype == np.float32
        np.testing.assert_allclose(backend.to_numpy(b.grad), a.grad, rtol=2e-4, atol=2e-5)


@needs_gpu
@on_gpus
def test_mixing_devices_raises(device):
    a, b = tt.ones(2, 3), tt.ones(2, 3, device=device)
    with pytest.raises(RuntimeError, match="device"):
        a + b
    with pytest.raises(RuntimeError):
        F.linear(a, tt.ones(4, 3, device=device))
    assert type(b.numpy()) is np.ndarray


# ----- each fused kernel against the array-op path on the same GPU -----

def _assert_kernel_matches(fn, kernels, name, rtol, atol):
    """fn() with the kernel ``name`` on and with every kernel off must agree; returns the fused results
    (host arrays)."""
    results = []
    for on in (True, False):
        kernels({name} if on else set())
        results.append([backend.to_numpy(r) for r in fn()])
    fused, plain = results
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    return fused


@needs_gpu
@on_gpus
@pytest.mark.parametrize("shape", [(64, 3072), (3, 5), ()])
def test_gelu_kernel_matches_the_array_path(device, kernels, shape):
    x0 = np.random.default_rng(0).standard_normal(shape) * 3

    def fn():
        x = tt.tensor(x0, requires_grad=True, device=device)
        y = F.gelu(x)
        y.backward(tt.tensor(np.ones(shape) * 0.5, device=device))
        return y.data, x.grad
    _assert_kernel_matches(fn, kernels, "gelu", rtol=1e-5, atol=1e-6)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("shape", [(4, 128, 768), (7, 100), (1, 33), (2, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_kernel_matches_the_array_path(device, kernels, shape, dtype):
    rng = np.random.default_rng(1)
    x0, w0, b0 = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    g0 = rng.standard_normal(shape)

    def fn():
        x, w, b = (tt.tensor(v, dtype=dtype, requires_grad=True, device=device) for v in (x0, w0, b0))
        y = F.layer_norm(x, w, b)
        y.backward(tt.tensor(g0, dtype=dtype, device=device))
        return y.data, x.grad, w.grad, b.grad
    tol = 1e-4 if dtype == np.float32 else 1e-10
    _assert_kernel_matches(fn, kernels, "layer_norm", rtol=tol, atol=tol)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("masked", [False, True], ids=["plain", "minus_inf_logits"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_kernels_match_the_array_path(device, kernels, reduction, masked, dtype):
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((4, 16, 1000)) * 3
    if masked:                                   # banned classes (never a target) and one large logit
        x0[..., 990:] = -np.inf
        x0[1, 2, 5] = 1e4
    t0 = rng.integers(0, 990, (4, 16))
    t0[0, :3] = -100

    def fn():
        x = tt.tensor(x0, dtype=dtype, requires_grad=True, device=device)
        loss = F.cross_entropy(x, t0, reduction=reduction)
        loss.backward(tt.tensor(np.ones(loss.shape) * 0.7, dtype=dtype, device=device))
        return loss.data, x.grad
    _assert_kernel_matches(fn, kernels, "cross_entropy", rtol=1e-5, atol=1e-7 if dtype == np.float64 else 1e-6)


@needs_gpu
@on_gpus
def test_adamw_kernel_matches_the_array_path(device, kernels):
    def fn():
        tt.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.LayerNorm(256), nn.Linear(256, 10)).to(device)
        opt = optim.AdamW([{"params": [p for p in model.parameters() if p.ndim == 2], "weight_decay": 0.1},
                           {"params": [p for p in model.parameters() if p.ndim == 1], "weight_decay": 0.0}], lr=1e-2)
        x = tt.tensor(np.random.default_rng(3).standard_normal((32, 64)), device=device)
        for _ in range(3):
            F.cross_entropy(model(x), np.arange(32) % 10).backward()
            opt.step()
            opt.zero_grad()
        moments = [v for s in opt.state.values() for k, v in s.items() if k != "step"]
        assert all(is_gpu_array(m) for m in moments)
        return [p.data for p in model.parameters()] + moments
    _assert_kernel_matches(fn, kernels, "adamw", rtol=1e-5, atol=1e-6)


@needs_gpu
@on_gpus
def test_embedding_backward_scatter_add_matches_the_array_path(device, kernels):
    ids = np.random.default_rng(4).integers(0, 50, (8, 300))       # many repeats

    def fn():
        w = tt.tensor(np.random.default_rng(5).standard_normal((50, 32)), requires_grad=True, device=device)
        x = tt.tensor(np.random.default_rng(6).standard_normal((60, 8)), requires_grad=True, device=device)
        (F.embedding(ids, w) * 1.5).sum().backward()
        x[[1, 1, 2, 59, 1]].sum().backward()
        return w.grad, x.grad
    fused = _assert_kernel_matches(fn, kernels, "scatter_add", rtol=1e-5, atol=1e-5)
    counts = np.bincount(ids.ravel(), minlength=50)
    np.testing.assert_allclose(fused[0], np.repeat(1.5 * counts[:, None], 32, axis=1), rtol=1e-5)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("causal,T,S", [(True, 70, 70), (True, 5, 37), (False, 33, 64), (True, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_attention_softmax_kernel_matches_the_array_path(device, kernels, causal, T, S, dtype, dropout):
    rng = np.random.default_rng(7)
    q0, k0, v0 = rng.standard_normal((2, 3, T, 16)) * 2, rng.standard_normal((2, 3, S, 16)), rng.standard_normal((2, 3, S, 16))
    g0 = rng.standard_normal((2, 3, T, 16))

    def fn():
        tt.manual_seed(11)                                   # the same dropout mask with the kernel on and off
        q, k, v = (tt.tensor(a, dtype=dtype, requires_grad=True, device=device) for a in (q0, k0, v0))
        y = F.scaled_dot_product_attention(q, k, v, causal=causal, dropout_p=dropout, training=True)
        y.backward(tt.tensor(g0, dtype=dtype, device=device))
        return y.data, q.grad, k.grad, v.grad
    tol = 1e-5 if dtype == np.float32 else 1e-11
    _assert_kernel_matches(fn, kernels, "attention_softmax", rtol=tol, atol=tol)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("on", [{"strided_matmul"}, {"strided_matmul", "attention_softmax"}], ids=["products", "both"])
@pytest.mark.parametrize("T,S,dropout", [(70, 70, 0.0), (40, 75, 0.0), (64, 64, 0.25)])
def test_causal_blocks_on_the_gpu_match_one_block(device, kernels, monkeypatch, on, T, S, dropout):
    """With GPU_BLOCK made small, causal attention on the GPU is cut into query blocks (cuBLAS on strided
    views); it must agree with the plain path (one block, cupy.matmul, array-op softmax)."""
    from tinytensor.schedule import attention
    monkeypatch.setattr(attention, "GPU_BLOCK", 16)
    rng = np.random.default_rng(8)
    q0, k0, v0 = rng.standard_normal((2, 3, T, 8)), rng.standard_normal((2, 3, S, 8)), rng.standard_normal((2, 3, S, 8))
    g0 = rng.standard_normal((2, 3, T, 8))
    results = []
    for names in (on, set()):
        kernels(names)
        assert len(attention.query_blocks(T, S, True, backend.cupy_module())) == (-(-T // 16) if names else 1)
        tt.manual_seed(12)
        q, k, v = (tt.tensor(a, dtype=np.float64, requires_grad=True, device=device) for a in (q0, k0, v0))
        y = F.scaled_dot_product_attention(q, k, v, causal=True, dropout_p=dropout, training=True)
        y.backward(tt.tensor(g0, dtype=np.float64, device=device))
        results.append([backend.to_numpy(r) for r in (y.data, q.grad, k.grad, v.grad)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tf32", [False, True])
def test_cublas_products_on_strided_views_match_numpy(device, dtype, tf32):
    """The layouts of tests/gpu/test_cuda_blas_emulated.py, now through the real cuBLAS (and one that falls back)."""
    from tinytensor.cuda import blas as cuda_blas
    cp = backend.cupy_module()
    rng = np.random.default_rng(9)
    cases = strided_cases(rng, dtype, cp)
    cases.append(("column-major out (falls back)", cp.asarray(rng.standard_normal((3, 5, 6)).astype(dtype)),
                  cp.asarray(rng.standard_normal((3, 6, 7)).astype(dtype)), cp.empty((3, 7, 5), dtype).swapaxes(-1, -2)))
    try:
        tt.set_tf32(tf32)
        for name, a, b, out in cases:
            assert cuda_blas.matmul_into(a, b, out) is out, name
            expected = cp.asnumpy(a).astype(np.float64) @ cp.asnumpy(b).astype(np.float64)
            tol = 1e-12 if dtype == np.float64 else (5e-3 if tf32 else 1e-5)
            np.testing.assert_allclose(cp.asnumpy(out), expected, rtol=tol, atol=tol * 10, err_msg=name)
    finally:
        tt.set_tf32(False)

# ----- the untested kernels (config.UNTESTED_CUDA_KERNELS) and 16-bit autocast on the GPU -----

def _needs_bfloat16(dtype):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="bfloat16 on CuPy needs ml_dtypes (and CuPy 14+)")


def _as_float32(a):
    """A host float32 copy of a CuPy (or NumPy) array of any float dtype, bfloat16 included."""
    return np.asarray(backend.to_numpy(a)).astype(np.float32)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("causal,T,S,D", [(True, 70, 70, 16), (True, 5, 37, 16), (False, 33, 64, 8), (True, 1, 1, 64),
                                          (True, 300, 300, 64), (False, 130, 129, 128)])
def test_flash_attention_kernel_matches_the_array_path(device, kernels, causal, T, S, D):
    rng = np.random.default_rng(13)
    q0, g0 = rng.standard_normal((2, 3, T, D)), rng.standard_normal((2, 3, T, D))
    k0, v0 = rng.standard_normal((2, 3, S, D)), rng.standard_normal((2, 3, S, D))

    def fn():
        q, k, v = (tt.tensor(a, requires_grad=True, device=device) for a in (q0, k0, v0))
        y = F.scaled_dot_product_attention(q, k, v, causal=causal)
        y.backward(tt.tensor(g0, device=device))
        return y.data, q.grad, k.grad, v.grad
    _assert_kernel_matches(fn, kernels, "flash_attention", rtol=2e-4, atol=2e-5)


@needs_gpu
@on_gpus
def test_flash_attention_on_strided_heads_as_the_gpt_makes_them(device, kernels):
    """q, k, v as views of one (B, T, 3, H, D) array, and a result read back as (B, T, H * D)."""
    rng = np.random.default_rng(14)
    qkv0, g0 = rng.standard_normal((2, 40, 3, 4, 16)), rng.standard_normal((2, 40, 64))

    def fn():
        qkv = tt.tensor(qkv0, requires_grad=True, device=device)
        parts = qkv.transpose(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(parts[0], parts[1], parts[2], causal=True)
        out = y.transpose(0, 2, 1, 3).reshape(2, 40, 64)
        out.backward(tt.tensor(g0, device=device))
        return out.data, qkv.grad
    _assert_kernel_matches(fn, kernels, "flash_attention", rtol=2e-4, atol=2e-5)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("flash", [False, True], ids=["float32_softmax_op", "flash"])
def test_attention_under_autocast_on_the_gpu(device, kernels, dtype, flash):
    _needs_bfloat16(dtype)
    kernels(set(config.CUDA_KERNEL_NAMES) | ({"flash_attention"} if flash else set()))
    rng = np.random.default_rng(15)
    q0, k0, v0, g0 = (rng.standard_normal((2, 3, 50, 32)) for _ in range(4))
    q, k, v = (tt.tensor(a, requires_grad=True, device=device) for a in (q0, k0, v0))
    with tt.autocast(dtype=dtype):
        y = F.scaled_dot_product_attention(q, k, v)
    assert str(y.dtype) == dtype
    y.backward(tt.tensor(g0, device=device).data.astype(y.dtype))
    rounded = [tt.tensor(_as_float32(tt.tensor(a, device=device).data.astype(y.dtype)), requires_grad=True)
               for a in (q0, k0, v0)]
    want = F.scaled_dot_product_attention(*rounded)
    want.backward(tt.tensor(_as_float32(tt.tensor(g0, device=device).data.astype(y.dtype))))
    tol = 2e-2 if dtype == "bfloat16" else 3e-3
    np.testing.assert_allclose(_as_float32(y.data), want.numpy(), rtol=tol, atol=tol)
    for got, ref in zip((q, k, v), rounded):
        assert got.grad.dtype == np.float32
        np.testing.assert_allclose(_as_float32(got.grad), ref.grad, rtol=5 * tol, atol=5 * tol)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("shape", [(64, 3072), (3, 5), ()])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_vectorised_gelu_matches_the_elementwise_kernel(device, kernels, shape, dtype):
    _needs_bfloat16(dtype)
    x0 = np.random.default_rng(16).standard_normal(shape) * 3
    results = []
    for names in ({"gelu_vectorized"}, {"gelu"}):
        kernels(names)
        x = tt.tensor(x0, requires_grad=True, device=device)
        low = tt.amp.low_dtype(dtype, backend.cupy_module()) if dtype != "float32" else np.dtype(np.float32)
        y = F.gelu(tt.amp.cast(x, low))                  # 16-bit data, as autocast hands it on
        assert y.dtype == low
        y.backward(tt.tensor(np.ones(shape) * 0.5, device=device).data.astype(y.dtype))
        results.append((_as_float32(y.data), _as_float32(x.grad)))
    tol = {"float32": 1e-6, "float16": 2e-3, "bfloat16": 1.6e-2}[dtype]
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    kernels({"gelu_vectorized"})                         # a view off the 16-byte boundary takes the other path
    x = tt.tensor(np.arange(9.0), device=device)[1:]
    np.testing.assert_allclose(F.gelu(x).numpy(), F.gelu(tt.tensor(np.arange(1.0, 9.0))).numpy(), rtol=1e-6)


def _train_on(device, dtype, steps=20):
    """tests/tinytensor/test_autocast.py's tiny GPT training loop, on ``device``."""
    spec = importlib.util.spec_from_file_location("_test_autocast", Path(__file__).parents[1] / "tinytensor" / "test_autocast.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train_tiny_gpt(dtype, steps, device)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_tiny_gpt_trains_under_autocast_on_the_gpu_like_float32(device, kernels, dtype):
    _needs_bfloat16(dtype)
    kernels(set(config.CUDA_KERNEL_NAMES) | set(config.UNTESTED_CUDA_KERNELS))
    l32, low = _train_on(device, "float32"), _train_on(device, dtype)
    assert l32[-1] < 0.6 * l32[0]
    assert abs(np.mean(low[-5:]) - np.mean(l32[-5:])) < 0.05 * np.mean(l32[-5:])


@needs_gpu
@on_gpus
def test_gpt_steps_with_the_untested_kernels_match_without(device, kernels):
    results = []
    for extra in (set(config.UNTESTED_CUDA_KERNELS), set()):
        kernels(set(config.CUDA_KERNEL_NAMES) | extra)
        results.append(_train_on(device, "float32", steps=5))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4)


@needs_gpu
@on_gpus
def test_save_bfloat16_from_the_gpu(device, tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 on CuPy needs ml_dtypes")
    cp = backend.cupy_module()
    a = cp.asarray(np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)).astype(np.dtype(ml_dtypes.bfloat16))
    tt.save({"w": a}, tmp_path / "bf16.safetensors")
    header, _ = tt.serialize.read_header(tmp_path / "bf16.safetensors")
    assert header["w"]["dtype"] == "BF16"
    np.testing.assert_array_equal(tt.load(tmp_path / "bf16.safetensors")["w"], _as_float32(a))


# ----- the GPT, generation, save/load, seeds, TF32 -----

def _cfg(drop=0.0):
    import gpt
    return gpt.GPTConfig(vocab_size=97, context_length=32, emb_dim=48, n_layers=2, n_heads=4, drop_rate=drop,
                         qkv_bias=True)


@needs_gpu
@on_gpus
def test_gpt_training_step_matches_the_cpu(device):
    import gpt
    tt.set_tf32(False)
    models, opts = [], []
    for dev in ("cpu", device):
        tt.manual_seed(0)
        m = gpt.GPT(_cfg(drop=0.1)).to(dev)
        models.append(m)
        opts.append(optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1))
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 97, (3, 32)), rng.integers(0, 97, (3, 32))
    for step in range(3):
        losses = []
        for m, opt in zip(models, opts):
            tt.manual_seed(50 + step)
            loss = F.cross_entropy(m(ids), targets)
            loss.backward()
            if m is models[1]:
                assert all(is_gpu_array(p.grad) for p in m.parameters())
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        assert is_gpu_array(b.data), name
        np.testing.assert_allclose(b.numpy(), a.data, rtol=1e-3, atol=2e-5, err_msg=name)
    assert all(is_gpu_array(v) for s in opts[1].state.values() for k, v in s.items() if k != "step")


@needs_gpu
@on_gpus
def test_generation_with_the_kv_cache_matches_the_cpu(device):
    import gpt
    tt.manual_seed(1)
    cpu = gpt.GPT(_cfg()).to(np.float64)
    tt.manual_seed(1)
    gpu = gpt.GPT(_cfg()).to(np.float64).to(device)
    prompt = np.array([[5, 6, 7, 8], [1, 2, 3, 4]])
    want = gpt.generate(cpu, prompt, max_new_tokens=40, use_cache=False)     # runs past the context (32)
    np.testing.assert_array_equal(gpt.generate(gpu, prompt, max_new_tokens=40, use_cache=True), want)
    np.testing.assert_array_equal(gpt.generate(gpu, prompt, max_new_tokens=40, use_cache=False), want)
    a = gpt.generate(gpu, prompt, max_new_tokens=10, temperature=0.8, top_p=0.9, seed=3)
    b = gpt.generate(cpu, prompt, max_new_tokens=10, temperature=0.8, top_p=0.9, seed=3)
    np.testing.assert_array_equal(a, b)


@needs_gpu
@on_gpus
def test_save_and_load_from_the_gpu(device, tmp_path):
    import gpt
    tt.manual_seed(2)
    model = gpt.GPT(_cfg()).to(device)
    tt.save(dict(model.named_parameters()), tmp_path / "m.safetensors")
    loaded = tt.load(tmp_path / "m.safetensors", device=device)
    assert all(is_gpu_array(v) for v in loaded.values())
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(backend.to_numpy(loaded[name]), p.numpy(), err_msg=name)
    tt.manual_seed(9)
    other = gpt.GPT(_cfg()).to(device)
    other.load_state_dict(tt.load(tmp_path / "m.safetensors"))
    assert all(is_gpu_array(p.data) for p in other.parameters())
    ids = np.arange(10)[None, :]
    np.testing.assert_array_equal(other(ids).numpy(), model(ids).numpy())


@needs_gpu
@on_gpus
def test_manual_seed_seeds_cupy(device):
    cp = backend.cupy_module()
    tt.manual_seed(5)
    a = cp.random.rand(4).get()
    tt.manual_seed(5)
    np.testing.assert_array_equal(cp.random.rand(4).get(), a)


@needs_gpu
@on_gpus
@pytest.mark.parametrize("shape", [(512, 512), (6, 128, 128)], ids=["matrix", "batched"])
def test_tf32_switch_changes_float32_matmul_precision(device, shape):
    cp = backend.cupy_module()
    if int(cp.cuda.Device().compute_capability) < 80:
        pytest.skip("TF32 needs compute capability 8.0+")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    exact = a @ b
    errors = {}
    try:
        for flag in (True, False):
            tt.set_tf32(flag)
            x, y = tt.tensor(a, device=device), tt.tensor(b, device=device)
            errors[flag] = np.abs((x @ y).numpy() - exact).max() / np.abs(exact).max()
    finally:
        tt.set_tf32(False)
    assert errors[False] < 1e-5, errors
    assert errors[True] > 1e-5, errors           # TF32 keeps about 10 mantissa bits: visibly coarser


# ----- the kernel sources compile (runs wherever nvcc is, GPU or not) -----

@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_kernel_sources_compile_with_nvcc(tmp_path):
    """Compile every kernel body, wrapped the way cupy.ElementwiseKernel wraps it, and the RawKernel source."""
    def elementwise(name, ins, outs, body):
        params = [f"const {t}* _{n}" for t, n in ins] + [f"{t}* _{n}" for t, n in outs]
        loads = "".join(f"const {t} {n} = _{n}[i];\n" for t, n in ins)
        loads += "".join(f"{t} &{n} = _{n}[i];\n" for t, n in outs)
        out = (f"template <typename T, typename I> __global__ void {name}({', '.join(params)}, long long n) {{\n"
               f"long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; if (i >= n) return;\n"
               f"{loads}{body};\n}}\n")
        for real in ("float", "double"):
            sig = ", ".join(p.replace("T", real).replace("I", "long long") for p in params)
            out += f"template __global__ void {name}<{real}, long long>({sig}, long long);\n"
        return out
    K = cuda_kernels
    src = K.ACCUMULATE_PREAMBLE
    src += elementwise("gelu_fwd", [("T", "x")], [("T", "y")], K.GELU_FORWARD)
    src += elementwise("gelu_bwd", [("T", "x"), ("T", "g")], [("T", "dx")], K.GELU_BACKWARD)
    src += elementwise("xent", [("T", "x"), ("T", "m"), ("T", "lse_m"), ("I", "t"), ("T", "s"), ("I", "col")], [("T", "dx")],
                       K.CROSS_ENTROPY_BACKWARD)
    src += elementwise("adamw", [("T", n) for n in "g b1 c1 b2 c2 decay step_size bc2 eps".split()],
                       [("T", "p"), ("T", "m"), ("T", "v")], K.ADAMW_UPDATE)
    units = {"elementwise": src}
    for real in ("float", "double"):              # each RawModule is its own compilation unit, as in CuPy
        units[f"layer_norm_{real}"] = K.LAYER_NORM_SOURCE.replace("REAL", real)
        units[f"attention_softmax_{real}"] = K.ATTENTION_SOFTMAX_SOURCE.replace("REAL", real)
        units[f"row_stats_{real}"] = K.ROW_STATS_SOURCE.replace("REAL", real)
    for name, code in units.items():
        (tmp_path / f"{name}.cu").write_text(code)
        out = subprocess.run(["nvcc", "-arch=sm_80", "--ptx", str(tmp_path / f"{name}.cu"), "-o",
                              str(tmp_path / f"{name}.ptx")], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (name, out.stderr)
