"""Data parallelism across processes: the collectives that ``nn.DistributedDataParallel`` is built on.

Start N copies of a script with ``mpiexec -n N python script.py`` (``pip install 'tinytensor[mpi]'``):

    import tinytensor.distributed as dist
    dist.init()                         # "mpi" between CPU processes; init("nccl") for GPU arrays too
    dist.rank(), dist.world_size()      # 0..N-1, N
    dist.all_reduce(grad, op="avg")     # in place: every rank ends with the mean of all ranks' arrays
    dist.broadcast(weights, src=0)      # in place: every rank ends with rank 0's values

The moving of bytes is done by existing engines: MPI (mpi4py) for host arrays, NCCL (CuPy's bindings) for
GPU arrays, picked by where each array lives. This module checks the arguments, keeps arrays in place
whatever their layout, and makes a failure on one rank stop them all: an uncaught exception prints that
rank's error in one line and aborts the job (``abort``), so no rank is left waiting in a collective
forever. Without mpiexec a process is a world of one: every collective returns at once and mpi4py is never
imported. Names follow ``torch.distributed`` so what a learner knows carries over.
"""
import os
import sys

import numpy as np

from ..backend import device_of, require_cuda, xp_of
from ..tensor import Tensor
from . import launcher

OPS = ("sum", "avg", "max", "min")
# what mpiexec/mpirun/srun put in each process's environment (MPICH and Intel MPI, Open MPI, MVAPICH)
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class _World:
    """This process's place in the job, and the engines that move host and GPU arrays."""

    def __init__(self, name, host, gpu):
        self.name, self.host, self.gpu = name, host, gpu
        self.rank, self.size, self.local_rank = host.rank, host.size, host.local_rank


class _Alone:
    """The engine of a world of one process: every collective is already done."""
    rank, size, local_rank = 0, 1, 0

    def all_reduce(self, buf, op, blocking):
        return None

    def broadcast(self, buf, src, blocking):
        return None

    def all_gather(self, send, recv, blocking):
        recv[...] = send
        return None

    def reduce_scatter(self, send, recv, op, blocking):
        recv[...] = send
        return None

    def barrier(self):
        pass

    def abort(self, exit_code):
        raise SystemExit(exit_code)


_world = None                       # set by init()
_ALONE = _World("none", _Alone(), _Alone())


def launched_by_mpi():
    """True when this process was started by an MPI launcher (mpiexec, mpirun, srun): its environment says so."""
    return any(name in os.environ for name in _LAUNCHER_VARS)


def init(backend=None):
    """Join the job this process was started in. Call it once, early, on every rank (again is a no-op).

    ``backend``: None or "mpi" (host arrays through MPI), or "nccl" (also GPU arrays through NCCL, one GPU
    per rank: ``local_rank() % GPUs on the machine``). Without an MPI launcher the process is a world of
    one and nothing is imported. Under one, an uncaught exception on any rank aborts every rank.
    """
    global _world
    if backend not in (None, "mpi", "nccl"):
        raise ValueError(f"init: unknown backend {backend!r}; use 'mpi' (CPU processes) or 'nccl' (one GPU per rank)")
    name = backend or "mpi"
    if _world is not None:
        if backend is not None and backend != _world.name:
            raise RuntimeError(f"init: already initialised with backend {_world.name!r}, cannot switch to {backend!r}")
        return
    if name == "nccl":
        require_cuda()          # says what is missing (CuPy, a GPU) before any rank waits for another
    if not launched_by_mpi():
        _world = _World(name, _Alone(), _Alone())
        return
    from .mpi import MpiEngine
    host = MpiEngine()
    gpu = None
    if name == "nccl":
        from .nccl import NcclEngine
        gpu = NcclEngine(host)
    _world = _World(name, host, gpu)
    if _world.size > 1:
        _stop_everyone_on_uncaught_exceptions()


def is_initialized():
    """True after ``init()``."""
    return _world is not None


def _current():
    if _world is not None:
        return _world
    if launched_by_mpi():
        raise RuntimeError("tinytensor.distributed: this process was started by an MPI launcher; call "
                           "tinytensor.distributed.init() on every rank before rank(), world_size() or a collective")
    return _ALONE


def rank():
    """This process's number in the job, 0 to world_size() - 1 (0 without mpiexec)."""
    return _current().rank


def world_size():
    """How many processes take part (1 without mpiexec)."""
    return _current().size


def local_rank():
    """This process's number among the job's processes on the same machine (which GPU it takes)."""
    return _current().local_rank


def get_backend():
    """"mpi" or "nccl" (what init() was given), "none" before init() in a process of its own."""
    return _current().name


def barrier():
    """Wait until every rank has called barrier()."""
    world = _current()
    (world.gpu or world.host).barrier()


class Work:
    """A collective started with ``async_op=True``: ``wait()`` finishes it, ``is_completed()`` asks (and lets
    MPI make progress: MPI moves data for a non-blocking collective only while some MPI call runs)."""

    def __init__(self, request, buffer, finish=None):
        self._request, self._buffer, self._finish = request, buffer, finish
        self._done = False

    def is_completed(self):
        if self._done or self._request is None:
            return True
        return bool(self._request.Test())

    def wait(self):
        """Block until this rank's part is done; the array then holds the result."""
        if self._done:
            return
        if self._request is not None:
            self._request.Wait()
        self._done = True
        if self._finish is not None:
            self._finish()


def _finished(request, buffer, finish, async_op):
    work = Work(request, buffer, finish)
    if async_op:
        return work
    work.wait()
    return None


def _in_place(x, what):
    """(contiguous 1-D view to communicate, function that copies the result back or None) for ``x``."""
    data = x.data if isinstance(x, Tensor) else x
    if isinstance(data, np.generic) or not hasattr(data, "dtype") or not hasattr(data, "flags"):
        hint = " (a NumPy scalar cannot change in place: wrap it, np.array(value))" if isinstance(data, np.generic) else ""
        raise TypeError(f"{what} works in place on an array or a Tensor, not on {type(x).__name__}{hint}")
    _check_dtype(data.dtype, what)
    if not getattr(data.flags, "writeable", True):
        raise ValueError(f"{what}: the array is read-only; pass a writable copy (array.copy())")
    if data.flags.c_contiguous:
        return data.reshape(-1), None
    flat = xp_of(data).ascontiguousarray(data).reshape(-1)   # a strided view: work on a copy

    def copy_back():
        data[...] = flat.reshape(data.shape)
    return flat, copy_back


def _check_dtype(dtype, what):
    if dtype.kind not in "fiu":
        raise TypeError(f"{what}: arrays of dtype {dtype} cannot be reduced; use a float or integer array")


def _engine(data, world, what):
    if device_of(data) == "cpu":
        return world.host
    if world.gpu is None:
        raise RuntimeError(f"{what}: a GPU array needs tinytensor.distributed.init('nccl') (MPI here moves host "
                           "arrays only); or move it to the CPU first")
    return world.gpu


def all_reduce(x, op="sum", async_op=False):
    """Combine ``x`` (an array or Tensor of the same shape and dtype on every rank) across ranks, in place.

    ``op``: "sum", "avg" (floats only: the sum divided by world_size()), "max" or "min". Returns None, or
    with ``async_op=True`` a ``Work`` whose ``wait()`` must be called before ``x`` is read or written.
    """
    if op not in OPS:
        raise ValueError(f"all_reduce: unknown op {op!r}; use one of {', '.join(OPS)}")
    world = _current()
    flat, copy_back = _in_place(x, "all_reduce")
    if op == "avg" and flat.dtype.kind != "f":
        raise TypeError(f"all_reduce: op='avg' needs floats, this array is {flat.dtype}; use op='sum' and divide")
    engine = _engine(flat, world, "all_reduce")
    request = engine.all_reduce(flat, "sum" if op == "avg" else op, blocking=not async_op)
    size = world.size

    def finish():
        if op == "avg" and size > 1:
            flat[...] /= flat.dtype.type(size)
        if copy_back is not None:
            copy_back()
    return _finished(request, flat, finish, async_op)


def broadcast(x, src=0, async_op=False):
    """Overwrite ``x`` on every rank with rank ``src``'s values, in place (same shape and dtype everywhere)."""
    world = _current()
    if not isinstance(src, (int, np.integer)) or not 0 <= src < world.size:
        raise ValueError(f"broadcast: src must be a rank from 0 to {world.size - 1}, got {src!r}")
    flat, copy_back = _in_place(x, "broadcast")
    request = _engine(flat, world, "broadcast").broadcast(flat, int(src), blocking=not async_op)
    return _finished(request, flat, copy_back, async_op)


def _readable(x, what):
    data = x.data if isinstance(x, Tensor) else x
    if not hasattr(data, "dtype") or not hasattr(data, "flags"):
        raise TypeError(f"{what} takes an array or a Tensor, not {type(x).__name__}")
    _check_dtype(data.dtype, what)
    return xp_of(data).ascontiguousarray(data).reshape(data.shape)     # (it makes 0-d arrays 1-d)


def _output(out, like, size, what):
    """``out`` checked to hold ``size`` elements of ``like``'s dtype contiguously, or a new array."""
    xp = xp_of(like)
    if out is None:
        return xp.empty(size, dtype=like.dtype).reshape(-1)
    data = out.data if isinstance(out, Tensor) else out
    if data.dtype != like.dtype or data.size != size or not data.flags.c_contiguous \
            or device_of(data) != device_of(like):
        raise ValueError(f"{what}: out must be a contiguous {like.dtype} array of {size} elements on "
                         f"{device_of(like)}, got {data.dtype} of shape {data.shape} on {device_of(data)}")
    return data


def all_gather(x, out=None):
    """Every rank's ``x`` (same shape and dtype everywhere), stacked: an array of shape (world_size(), *x.shape).

    ``out``: optional contiguous array of world_size() * x.size elements to write into (returned, reshaped).
    """
    world = _current()
    send = _readable(x, "all_gather")
    target = _output(out, send, world.size * send.size, "all_gather")
    _engine(send, world, "all_gather").all_gather(send.reshape(-1), target.reshape(-1), blocking=True)
    return target.reshape((world.size,) + send.shape)


def reduce_scatter(x, op="sum", out=None):
    """Combine ``x`` across ranks like all_reduce, but give each rank only its share: rank r gets elements
    [r * n, (r + 1) * n) of the flattened result, n = x.size / world_size() (which must divide).

    Returns that share as a 1-D array (``out`` when given). ``op`` as in all_reduce.
    """
    if op not in OPS:
        raise ValueError(f"reduce_scatter: unknown op {op!r}; use one of {', '.join(OPS)}")
    world = _current()
    send = _readable(x, "reduce_scatter").reshape(-1)
    if send.size % world.size:
        raise ValueError(f"reduce_scatter: {send.size} elements do not split evenly over {world.size} ranks")
    if op == "avg" and send.dtype.kind != "f":
        raise TypeError(f"reduce_scatter: op='avg' needs floats, this array is {send.dtype}")
    share = _output(out, send, send.size // world.size, "reduce_scatter")
    _engine(send, world, "reduce_scatter").reduce_scatter(send, share.reshape(-1), "sum" if op == "avg" else op,
                                                          blocking=True)
    if op == "avg" and world.size > 1:
        share /= share.dtype.type(world.size)
    return share


# ----- failures: one rank's error ends the whole job -----

def abort(message, exit_code=1):
    """Print ``message`` as this rank's one-line error on stderr and end every rank of the job now.

    Use it where one rank alone finds it cannot go on (a ``sys.exit`` on one rank would leave the others
    waiting in their next collective). It works before ``init()`` too: a rank started by mpiexec that fails
    before MPI starts ends the job through its launcher (``launcher.end_job``), so no rank waits in MPI's
    start-up for it. In a world of one it raises SystemExit(exit_code).
    """
    if _world is None and launched_by_mpi() and launcher.launched_size() > 1:     # MPI not started here
        rank, size, end = launcher.launched_rank(), launcher.launched_size(), launcher.end_job
    else:
        world = _current()
        rank, size, end = world.rank, world.size, (world.gpu or world.host).abort
    where = f"rank {rank} of {size}: " if size > 1 else ""
    sys.stderr.write(f"error: {where}{message}\n")       # one write: the line arrives whole or not at all
    sys.stderr.flush()
    end(exit_code)


def _stop_everyone_on_uncaught_exceptions():
    """An exception nobody caught: the usual traceback, then abort(): MPI ends every rank of the job."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        text = str(value).strip().splitlines()
        abort(f"{kind.__name__}: {text[0]}" if text else kind.__name__)
    sys.excepthook = hook


__all__ = ["init", "is_initialized", "rank", "world_size", "local_rank", "get_backend", "barrier", "all_reduce",
           "broadcast", "all_gather", "reduce_scatter", "abort", "launched_by_mpi", "Work", "OPS",
           "ZeroRedundancyOptimizer"]

from . import zero  # noqa: E402  (it uses the collectives above, handed over here)
zero.COLLECTIVES = sys.modules[__name__]
ZeroRedundancyOptimizer = zero.ZeroRedundancyOptimizer
