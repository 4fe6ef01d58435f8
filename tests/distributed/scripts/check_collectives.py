"""The collectives on every rank of ``mpiexec -n N`` (run by tests/distributed/test_collectives_mpi.py).

    mpiexec -n 2 python tests/distributed/scripts/check_collectives.py

Host arrays go through MPI. GPU arrays go through the NCCL engine, here on the CPU: tests/test_device_seam.py's
fake CuPy (arrays that pretend to live on a GPU) plus a fake ``cupy.cuda.nccl`` whose communicator does
what NCCL would with the pointers, counts, dtype codes and reduction codes it is given, through MPI. So
the NCCL engine's plumbing and the device dispatch are checked without a GPU; a real GPU run is
benchmarks/gpu_check.sh's business. Every rank prints "ok rank R" at the end.
"""
import ctypes
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))      # tests/, for the fake CuPy
from test_device_seam import FakeCupy, FakeDeviceArray          # noqa: E402

DTYPES = (np.float32, np.float64, np.int32, np.int64, np.uint8)
SHAPES = ((), (1,), (7,), (3, 5), (1001,), (2, 3, 5))


# ----- a fake NCCL that moves fake-GPU memory through MPI -----

def install_fake_cuda(uid_as_bytes=True):
    """Make ``import cupy`` give the fake, with just enough of cupy.cuda (devices, streams, nccl)."""
    from mpi4py import MPI
    FakeDeviceArray.data = property(lambda self: types.SimpleNamespace(ptr=self.ctypes.data))   # CuPy's .data.ptr
    codes = {np.dtype(t): i for i, t in enumerate((np.float16, np.float32, np.float64, np.int8, np.uint8,
                                                   np.int32, np.uint32, np.int64, np.uint64))}
    names = ("FLOAT16", "FLOAT32", "FLOAT64", "INT8", "UINT8", "INT32", "UINT32", "INT64", "UINT64")
    ops = {100: MPI.SUM, 101: MPI.MAX, 102: MPI.MIN}

    def host_view(ptr, count, code):
        dtype = next(t for t, c in codes.items() if c == code)
        raw = (ctypes.c_byte * (count * dtype.itemsize)).from_address(ptr)
        return np.frombuffer(raw, dtype=dtype, count=count)

    class Communicator:
        calls = 0               # all-reduces done, so a check can see that its arrays went through here

        def __init__(self, ndev, uid, rank):
            comm = MPI.COMM_WORLD
            assert (ndev, rank) == (comm.size, comm.rank), (ndev, rank)
            assert isinstance(uid, bytes if uid_as_bytes else tuple) and len(uid) == 128, type(uid)
            mine = np.frombuffer(uid, np.int8) if uid_as_bytes else np.array(uid, dtype=np.int8)
            every = np.empty((comm.size, 128), np.int8)
            comm.Allgather(mine, every)
            assert (every == mine).all(), "the ranks got different NCCL ids"
            self.comm = comm

        def allReduce(self, send, recv, count, code, op, stream):
            assert send == recv and stream == 7
            Communicator.calls += 1
            self.comm.Allreduce(MPI.IN_PLACE, host_view(recv, count, code), ops[op])

        def bcast(self, buf, count, code, root, stream):
            self.comm.Bcast(host_view(buf, count, code), root=root)

        def allGather(self, send, recv, count, code, stream):
            self.comm.Allgather(host_view(send, count, code), host_view(recv, count * self.comm.size, code))

        def reduceScatter(self, send, recv, count, code, op, stream):
            self.comm.Reduce_scatter_block(host_view(send, count * self.comm.size, code),
                                           host_view(recv, count, code), ops[op])

        def abort(self):
            pass

    def unique_id():
        made = np.random.default_rng().integers(-128, 128, 128, dtype=np.int8)
        return made.tobytes() if uid_as_bytes else tuple(int(v) for v in made)

    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.__dict__.update({f"NCCL_{n}": codes[np.dtype(n.lower())] for n in names})
    nccl.NCCL_SUM, nccl.NCCL_MAX, nccl.NCCL_MIN = 100, 101, 102
    nccl.get_unique_id, nccl.NcclCommunicator = unique_id, Communicator
    fake = FakeCupy()
    stream = types.SimpleNamespace(ptr=7, synchronize=lambda: None)
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1), nccl=nccl,
                                      Device=lambda i: types.SimpleNamespace(use=lambda: None),
                                      get_current_stream=lambda: stream)
    sys.modules.update({"cupy": fake, "cupy.cuda": fake.cuda, "cupy.cuda.nccl": nccl})
    from tinytensor import backend
    backend._cupy = fake
    return fake


# ----- the checks, for host arrays and (with to_device) fake-GPU ones -----

def check_collectives(dist, to_device=np.asarray, on_device=lambda a: type(a) is np.ndarray):
    import tinytensor as tt
    rank, world = dist.rank(), dist.world_size()
    for dtype in DTYPES:
        for shape in SHAPES:
            base = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) % 50
            mine = [(base * (r + 1) + r).astype(dtype) for r in range(world)]     # what each rank holds
            for op, expect in (("sum", sum(m.astype(np.float64) for m in mine)),
                               ("max", np.max(mine, axis=0)), ("min", np.min(mine, axis=0)),
                               ("avg", sum(m.astype(np.float64) for m in mine) / world)):
                if op == "avg" and np.dtype(dtype).kind != "f":
                    continue
                x = to_device(mine[rank].copy())
                dist.all_reduce(x, op=op)
                assert on_device(x) and x.dtype == dtype and x.shape == shape, (op, dtype, shape, type(x))
                np.testing.assert_allclose(np.asarray(x.get() if hasattr(x, "get") else x), expect.astype(dtype),
                                           rtol=1e-6, err_msg=f"{op} {np.dtype(dtype)} {shape}")
            for src in range(world):
                x = to_device(mine[rank].copy())
                dist.broadcast(x, src=src)
                assert np.array_equal(_host(x), mine[src]), (src, dtype, shape)
            gathered = dist.all_gather(to_device(mine[rank]))
            assert on_device(gathered) and gathered.shape == (world,) + shape
            assert np.array_equal(_host(gathered), np.stack(mine))
    # a Tensor in place; arrays that are strided views (the elements around them untouched)
    t = tt.tensor(to_device(np.full(5, rank + 1.0, np.float32)))
    dist.all_reduce(t, op="avg")
    assert on_device(t.data) and np.allclose(_host(t.data), (world + 1) / 2)
    big = to_device(np.arange(40.0).reshape(5, 8) + 100 * rank)
    dist.all_reduce(big[1:4, ::3])            # a strided view
    dist.all_reduce(big.T[2])                 # a column of the transpose: a view with stride 8
    host = sum(np.arange(40.0).reshape(5, 8) + 100 * r for r in range(world))
    expect = np.arange(40.0).reshape(5, 8) + 100 * rank
    expect[1:4, ::3] = host[1:4, ::3]
    expect[:, 2] = host[:, 2]
    assert np.array_equal(_host(big), expect), _host(big)
    fortran = to_device(np.asfortranarray(np.arange(6.0).reshape(2, 3) * (rank + 1)))
    dist.broadcast(fortran, src=world - 1)
    assert np.array_equal(_host(fortran), np.arange(6.0).reshape(2, 3) * world)
    # reduce_scatter: rank r gets its slice of the sum
    share = dist.reduce_scatter(to_device(np.arange(4.0 * world) * (rank + 1)), op="avg")
    full = np.arange(4.0 * world) * sum(r + 1 for r in range(world)) / world
    assert np.allclose(_host(share), full[4 * rank:4 * rank + 4])
    # non-blocking: the work finishes at wait()
    x = to_device(np.full(3, float(rank)))
    work = dist.all_reduce(x, async_op=True)
    work.wait()
    assert work.is_completed() and np.allclose(_host(x), sum(range(world)))


def _host(a):
    return np.asarray(a.get() if hasattr(a, "get") else a)


def check_ddp_on_device(dist):
    """DDP of a small GPT on the fake GPU (NCCL engine) ends where DDP on the CPU (MPI engine) does."""
    import gpt
    import tinytensor as tt
    import tinytensor.functional as F
    from tinytensor import nn, optim
    cfg = gpt.GPTConfig(vocab_size=31, context_length=8, emb_dim=16, n_layers=1, n_heads=2, qkv_bias=False)
    ids = np.random.default_rng(dist.rank()).integers(0, 31, (3, 2, 9))
    finals = []
    nccl = sys.modules["cupy.cuda.nccl"].NcclCommunicator
    for device in ("cpu", "cuda"):
        before = nccl.calls
        tt.manual_seed(0)
        model = nn.DistributedDataParallel(gpt.GPT(cfg).to(device), bucket_mb=0.01, first_bucket_mb=0.002)
        opt = optim.AdamW(model.parameters(), lr=1e-2)
        for batch in ids:
            x, y = tt.tensor(batch[:, :-1], device=device), tt.tensor(batch[:, 1:], device=device)
            F.cross_entropy(model(x), y).backward()
            grads = [p.grad for p in model.parameters()]
            assert all(g is not None and (type(g) is FakeDeviceArray) == (device == "cuda") for g in grads)
            opt.step()
            opt.zero_grad()
        assert (nccl.calls > before) == (device == "cuda"), (device, nccl.calls, before)
        finals.append(model.state_dict())
    for name, value in finals[0].items():
        np.testing.assert_allclose(finals[1][name], value, rtol=1e-5, atol=1e-7, err_msg=name)


if __name__ == "__main__":
    install_fake_cuda(uid_as_bytes=True)
    import tinytensor.distributed as dist
    from tinytensor.distributed.nccl import NcclEngine
    dist.init("nccl")
    assert dist.get_backend() == "nccl" and dist.world_size() > 1
    check_collectives(dist)                                                     # host arrays: MPI
    fake = sys.modules["cupy"]
    check_collectives(dist, to_device=fake.asarray, on_device=lambda a: type(a) is FakeDeviceArray)  # NCCL
    check_ddp_on_device(dist)
    install_fake_cuda(uid_as_bytes=False)                                       # older CuPy: the id is a tuple
    NcclEngine(dist._world.host)
    dist.barrier()
    print(f"ok rank {dist.rank()}", flush=True)
