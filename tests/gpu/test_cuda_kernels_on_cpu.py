"""The vectorised GELU kernels' CUDA source, run on the CPU (tests/gpu/cuda_on_cpu.h) against the op's math, for
each storage type and for lengths that leave a tail after the 16-byte vectors; and compiled with nvcc.
On a real GPU: tests/gpu/test_gpu.py."""
import math
import shutil
import subprocess

import numpy as np
import pytest

from tinytensor.cuda import kernels as cuda_kernels

import cuda_on_cpu

pytestmark = pytest.mark.skipif(not cuda_on_cpu.available(), reason="g++ not installed")
C = math.sqrt(2 / math.pi)


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(C * (x + 0.044715 * x ** 3)))


def _gelu_grad(x):
    t = np.tanh(C * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * 0.044715 * x * x)


def _storage(x, kind):
    if kind == "float32":
        return x.astype(np.float32)
    if kind == "float16":
        return x.astype(np.float16)
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _value(x, kind):
    return (x.astype(np.uint32) << 16).view(np.float32).astype(np.float64) if kind == "bfloat16" else x.astype(np.float64)


@pytest.fixture(scope="module")
def gelu_kernels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gelu_cpu")
    return {kind: cuda_on_cpu.build(cuda_kernels.gelu_vectorized_source(kind), folder, f"gelu_{kind}")
            for kind in ("float32", "float16", "bfloat16")}


@pytest.mark.parametrize("kind,tol", [("float32", 1e-6), ("float16", 2e-3), ("bfloat16", 1.6e-2)])
@pytest.mark.parametrize("n", [1, 7, 8, 67, 1000])
def test_vectorised_gelu_source_on_the_cpu(gelu_kernels, kind, tol, n):
    kernels = gelu_kernels[kind]
    rng = np.random.default_rng(n)
    x = _storage(rng.standard_normal(n) * 3, kind)
    g = _storage(rng.standard_normal(n), kind)
    y, dx = np.full(n, 99, dtype=x.dtype), np.full(n, 99, dtype=x.dtype)
    # two blocks of 32 threads: grid-stride loops and the tail both run
    kernels["tt_gelu_vec_fwd"](2, 1, 32, x.ctypes.data, y.ctypes.data, n)
    kernels["tt_gelu_vec_bwd"](2, 1, 32, x.ctypes.data, g.ctypes.data, dx.ctypes.data, n)
    xv = _value(x, kind)
    np.testing.assert_allclose(_value(y, kind), _gelu(xv), rtol=tol, atol=tol)
    np.testing.assert_allclose(_value(dx, kind), _value(g, kind) * _gelu_grad(xv), rtol=tol, atol=tol)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_vectorised_gelu_source_compiles_with_nvcc(tmp_path):
    for kind in ("float32", "bfloat16", "float16"):
        cu = tmp_path / f"gelu_{kind}.cu"
        cu.write_text(cuda_kernels.gelu_vectorized_source(kind))
        out = subprocess.run(["nvcc", "-arch=sm_90", "--ptx", str(cu), "-o", str(cu.with_suffix(".ptx"))],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (kind, out.stderr[-3000:])
