"""The flash attention kernels (tinytensor/cuda/flash_attention.py) without a GPU.

1. The tiled math (the NumPy twin) against the fused attention op, forward and backward, on odd shapes.
2. The CUDA source itself, run on the CPU: tests/gpu/cuda_on_cpu.h plays blocks, threads, shared memory,
   __syncthreads and warp shuffles, so the kernels' index arithmetic, masks, strides and barriers are
   checked here; small tiles make every shape span several blocks and tiles.
3. The source compiles with nvcc for every input dtype, with no register spills at GPT-2's head size.
The same kernels against the array path on a real GPU: tests/gpu/test_gpu.py.
"""
import re
import shutil
import subprocess

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import config
from tinytensor.cuda import flash_attention

import cuda_on_cpu

SMALL_TILES = dict(block_q=16, block_k=8, block_kv=16, query_tile=8)
SHAPES = [  # (B, H, T, S, D, causal)
    (2, 3, 37, 37, 12, True), (1, 2, 20, 45, 8, True), (2, 2, 33, 50, 16, False), (1, 1, 1, 1, 4, True),
    (1, 2, 16, 16, 8, True),
]


def _inputs(B, H, T, S, D, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q, g = (rng.standard_normal((B, H, T, D)).astype(dtype) for _ in range(2))
    k, v = (rng.standard_normal((B, H, S, D)).astype(dtype) for _ in range(2))
    return q, k, v, g


def _fused(q, k, v, g, causal):
    """The engine's fused attention op (float64): out, dq, dk, dv."""
    tq, tk, tv = (tt.tensor(a, dtype=np.float64, requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(tq, tk, tv, causal=causal)
    out.backward(tt.tensor(g, dtype=np.float64))
    return out.numpy(), tq.grad, tk.grad, tv.grad


@pytest.mark.parametrize("tiles", [{}, SMALL_TILES], ids=["default_tiles", "small_tiles"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_tiled_math_matches_the_fused_op(shape, tiles):
    B, H, T, S, D, causal = shape
    q, k, v, g = _inputs(B, H, T, S, D)
    out, lse = flash_attention.forward(q, k, v, causal, **{name: n for name, n in tiles.items()
                                                           if name in ("block_q", "block_k")})
    dq, dk, dv = flash_attention.backward(q, k, v, out, lse, g, causal, **tiles)
    for got, want in zip((out, dq, dk, dv), _fused(q, k, v, g, causal)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    s = np.einsum("bhtd,bhsd->bhts", q, k) / np.sqrt(D)
    if causal:
        s = np.where(np.arange(S)[None, :] <= np.arange(T)[:, None] + S - T, s, -np.inf)
    np.testing.assert_allclose(lse, np.log(np.exp(s).sum(-1)), rtol=1e-12)


# ----- the CUDA source on the CPU -----

_BUILT = {}


def _cpu_kernels(tmp_dir, kind, D, split=2, **tiles):
    """The flash kernels for ``kind`` and head dim D, compiled for the CPU: {name: launcher}."""
    key = (kind, D, split)
    if key not in _BUILT:
        _BUILT[key] = cuda_on_cpu.build(flash_attention.source(kind, D, split=split, **tiles), tmp_dir,
                                        f"flash_{kind}_{D}")
    return _BUILT[key]


def _ptr(a):
    return a.ctypes.data


def _strides(a):
    return [s // a.itemsize for s in a.strides[:3]]


STORAGE = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}


def _to_storage(x, kind):
    """Host data as the kernel's ELEM: float32, float16, or bfloat16 bits (round to nearest even)."""
    if kind != "bfloat16":
        return x.astype(STORAGE[kind])
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _from_storage(x, kind):
    if kind != "bfloat16":
        return x.astype(np.float64)
    return (x.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    if not cuda_on_cpu.available():
        pytest.skip("g++ not installed: the CUDA source cannot be run on the CPU")
    return tmp_path_factory.mktemp("flash_cpu")


@pytest.mark.parametrize("kind,tol", [("float32", 2e-5), ("float16", 4e-3), ("bfloat16", 3e-2)])
@pytest.mark.parametrize("shape", [(1, 2, 19, 27, 8, True), (1, 2, 21, 21, 8, True), (2, 1, 10, 23, 8, False)],
                         ids=str)
def test_the_cuda_source_run_on_the_cpu_matches_the_tiled_math(build_dir, kind, tol, shape):
    B, H, T, S, D, causal = shape
    tiles = dict(block_q=16, block_k=8, block_kv=16, query_tile=8)
    kernels = _cpu_kernels(build_dir, kind, D, **tiles)
    rng = np.random.default_rng(4)
    # q, k, v as the model makes them: views into one (B, T, 3, H, D) array with heads inside tokens
    qkv = _to_storage(rng.standard_normal((B, max(T, S), 3, H, D)), kind)
    q = qkv[:, S - T:S, 0].transpose(0, 2, 1, 3)                     # (S >= T here)
    k, v = qkv[:, :S, 1].transpose(0, 2, 1, 3), qkv[:, :S, 2].transpose(0, 2, 1, 3)
    g = _to_storage(rng.standard_normal((B, H, T, D)), kind)
    want_out, want_lse = flash_attention.forward(*(_from_storage(a, kind) for a in (q, k, v)), causal)
    want = flash_attention.backward(*(_from_storage(a, kind) for a in (q, k, v)), want_out, want_lse,
                                    _from_storage(g, kind), causal)
    out = np.zeros((B, T, H, D), dtype=q.dtype).transpose(0, 2, 1, 3)      # heads inside tokens, as on the GPU
    lse = np.zeros((B * H, T), dtype=np.float32)
    scale = 1.0 / np.sqrt(D)
    dims = [H, T, S, int(causal), scale]
    grid_q = (-(-T // 16), B * H, 16 * 2)
    kernels["tt_flash_fwd"](*grid_q, _ptr(q), _ptr(k), _ptr(v), _ptr(out), _ptr(lse), *dims,
                            *_strides(q), *_strides(k), *_strides(v), *_strides(out))
    np.testing.assert_allclose(_from_storage(out, kind), want_out, rtol=tol, atol=tol)
    np.testing.assert_allclose(lse.reshape(B, H, T), want_lse, rtol=tol, atol=tol)
    dq, dk, dv = (np.full((B, H, n, D), 7, dtype=q.dtype) for n in (T, S, S))
    delta = np.zeros((B * H, T), dtype=np.float32)
    kernels["tt_flash_bwd_dq"](*grid_q, _ptr(q), _ptr(k), _ptr(v), _ptr(out), _ptr(g), _ptr(lse), _ptr(delta),
                               _ptr(dq), *dims, *_strides(q), *_strides(k), *_strides(v), *_strides(out),
                               *_strides(g), *_strides(dq))
    kernels["tt_flash_bwd_dkdv"](-(-S // 16), B * H, 16 * 2, _ptr(q), _ptr(k), _ptr(v), _ptr(g), _ptr(lse),
                                 _ptr(delta), _ptr(dk), _ptr(dv), *dims, *_strides(q), *_strides(k), *_strides(v),
                                 *_strides(g), *_strides(dk), *_strides(dv))
    for name, got, w in zip(("dq", "dk", "dv"), (dq, dk, dv), want):
        np.testing.assert_allclose(_from_storage(got, kind), w, rtol=tol, atol=tol * 4, err_msg=name)


# ----- nvcc -----

@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_the_cuda_source_compiles_for_hopper_without_spills(tmp_path):
    """The float32 kernels to a cubin for sm_90: ptxas reports no spills at GPT-2's head size 64. (The 16-bit
    kinds differ only in ELEMENT_IO's loads and stores, compiled for all three kinds with the GELU kernels in
    tests/gpu/test_cuda_kernels_on_cpu.py; NVRTC compiles every kind on the GPU.)"""
    cu = tmp_path / "flash.cu"
    cu.write_text(flash_attention.source("float32", 64))
    out = subprocess.run(["nvcc", "-arch=sm_90", "-cubin", "-Xptxas", "-v", str(cu), "-o", str(tmp_path / "flash.cubin")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    spills = re.findall(r"(\d+) bytes spill stores", out.stderr)
    assert len(spills) == 3 and all(s == "0" for s in spills), out.stderr


def test_the_flash_kernel_is_off_unless_named(monkeypatch):
    assert "flash_attention" not in config.cuda_kernels
    monkeypatch.setenv("TINYTENSOR_CUDA_KERNELS", "all,flash_attention")
    named = config._cuda_kernels_from_environment()
    assert named == set(config.CUDA_KERNEL_NAMES) | {"flash_attention"}
    monkeypatch.setenv("TINYTENSOR_CUDA_KERNELS", "all")
    assert "flash_attention" not in config._cuda_kernels_from_environment()
