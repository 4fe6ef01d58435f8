"""tinytensor.distributed in one process without mpiexec: a world of one, clear errors, no mpi4py."""
import subprocess
import sys

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.distributed as dist
from mpi_helpers import ROOT, clean_env


pytestmark = pytest.mark.usefixtures("alone")       # a world of one (conftest.py)


def test_importing_and_a_world_of_one_never_import_mpi4py():
    code = ("import sys, numpy as np, tinytensor as tt, tinytensor.distributed as dist\n"
            "from tinytensor import nn\n"
            "dist.init(); x = np.arange(3.0); dist.all_reduce(x, op='avg'); dist.barrier()\n"
            "nn.DistributedDataParallel(nn.Linear(2, 2))\n"
            "print(dist.world_size(), dist.rank(), dist.is_initialized(), x.tolist(), 'mpi4py' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0", "True", "[0.0,", "1.0,", "2.0]", "False"]


def test_a_world_of_one_before_and_after_init():
    assert (dist.rank(), dist.world_size(), dist.local_rank(), dist.is_initialized()) == (0, 1, 0, False)
    dist.init()
    dist.init("mpi")                                   # again: nothing happens
    assert dist.is_initialized() and dist.get_backend() == "mpi" and dist.world_size() == 1
    with pytest.raises(RuntimeError, match="already initialised with backend 'mpi'"):
        dist.init("nccl")


def test_under_a_launcher_rank_needs_init_first(monkeypatch):
    monkeypatch.setenv("PMI_RANK", "0")
    assert dist.launched_by_mpi()
    with pytest.raises(RuntimeError, match=r"call tinytensor.distributed.init\(\) on every rank"):
        dist.rank()
    with pytest.raises(RuntimeError, match="init"):
        dist.all_reduce(np.ones(2))


def test_bad_backend_names_and_a_missing_gpu(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend 'gloo'"):
        dist.init("gloo")
    from tinytensor import backend
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)       # makes `import cupy` fail
    with pytest.raises(RuntimeError, match="CuPy"):
        dist.init("nccl")
    assert not dist.is_initialized()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5)])
def test_collectives_in_a_world_of_one_leave_values_alone(dtype, shape):
    x = np.array(np.arange(1, int(np.prod(shape)) + 1).reshape(shape), dtype=dtype)
    want = x.copy()
    for op in ("sum", "max", "min") + (("avg",) if np.dtype(dtype).kind == "f" else ()):
        dist.all_reduce(x, op=op)
        assert x.dtype == dtype and np.array_equal(x, want)
    dist.broadcast(x, src=0)
    assert np.array_equal(x, want)
    gathered = dist.all_gather(x)
    assert gathered.shape == (1,) + shape and np.array_equal(gathered[0], want)
    assert np.array_equal(dist.reduce_scatter(x), want.reshape(-1))
    t = tt.tensor(want)
    work = dist.all_reduce(t, async_op=True)
    work.wait()
    assert work.is_completed() and np.array_equal(t.data, want)


@pytest.mark.parametrize("call, error, message", [
    (lambda: dist.all_reduce(np.ones(2), op="mean"), ValueError, "unknown op 'mean'; use one of sum, avg, max, min"),
    (lambda: dist.all_reduce(np.ones(2, np.int64), op="avg"), TypeError, "op='avg' needs floats"),
    (lambda: dist.all_reduce(np.float32(2)), TypeError, "NumPy scalar cannot change in place"),
    (lambda: dist.all_reduce([1.0, 2.0]), TypeError, "array or a Tensor, not on list"),
    (lambda: dist.all_reduce(np.ones(2, bool)), TypeError, "dtype bool cannot be reduced"),
    (lambda: dist.all_reduce(np.broadcast_to(np.ones(1), (3,))), ValueError, "read-only"),
    (lambda: dist.broadcast(np.ones(2), src=1), ValueError, "src must be a rank from 0 to 0, got 1"),
    (lambda: dist.all_gather(np.ones(2), out=np.ones(3)), ValueError, "out must be a contiguous float64 array of 2"),
])
def test_bad_arguments_get_one_clear_line(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


def test_abort_in_a_world_of_one_prints_the_error_and_exits(capsys):
    with pytest.raises(SystemExit) as info:
        dist.abort("the data file vanished", exit_code=4)
    assert info.value.code == 4
    assert capsys.readouterr().err == "error: the data file vanished\n"
