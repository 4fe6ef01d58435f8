"""DistributedDataParallel: the same model in every process, gradients averaged across them during backward.

    dist.init()                                       # under mpiexec -n N (see tinytensor.distributed)
    model = nn.DistributedDataParallel(gpt.GPT(cfg))  # every rank starts from rank 0's weights
    loss = F.cross_entropy(model(x_mine), y_mine)     # each rank: its own share of the global batch
    loss.backward()                                   # on return .grad is the average over all ranks
    opt.step()                                        # so every rank takes the same step

How it works (the plan of PyTorch's DDP and of llm.c, written anew for this engine):

- Buckets. Trainable parameters, in reverse registration order (about the order backward finishes their
  gradients), are packed into flat buffers of about ``bucket_mb`` megabytes, the first one smaller
  (``first_bucket_mb``) so that communication starts early. One all-reduce per bucket, not per parameter.
- Overlap. A post-accumulate-grad hook on every parameter counts down its bucket. When the last gradient
  of a bucket is final, the bucket's gradients are copied into its buffer and a non-blocking all-reduce
  starts while backward goes on with earlier layers. Buckets start strictly in index order (every rank
  must issue collectives in the same order), so one that fills early waits for those before it. Each hook
  also polls the oldest all-reduce in flight, because MPI moves data only while some MPI call runs.
- The end of the pass. The first hook of a backward pass queues a callback (``queue_final_callback``) that
  runs when ``backward()`` returns: it starts the buckets still waiting, waits for every all-reduce, divides
  by the number of ranks and points each parameter's ``.grad`` at its slice of the bucket buffer. So the
  gradients are averaged by the time ``loss.backward()`` returns and the optimizer needs no change.
- Parameters without a gradient. Each bucket carries one more number per parameter: 1 where this rank
  had a gradient, 0 where not (unused in this forward, or frozen after wrapping); it is summed with the
  gradients. A parameter no rank touched keeps ``.grad = None`` (the optimizer skips it, as in one
  process); one that only some ranks touched gets the average with zeros from the others, which is the
  gradient of the global batch's mean. Nothing waits for a gradient that never comes.
- ``no_sync()``. Inside it the hooks do nothing and gradients add up locally; the first backward outside
  it reduces the accumulated sums (gradient accumulation with one all-reduce per optimizer step).

Parameters frozen (``requires_grad=False``) when the wrapper is built are left out of the buckets and never
communicated; un-freezing one later is refused at the next backward (wrap again after changing them).
``.grad`` arrays are views into the bucket buffers, overwritten by the next synchronised backward: copy
one to keep it. ``forward``, ``state_dict``, ``parameters`` and attribute access go to the wrapped model,
whose names stay unprefixed, so checkpoints load into a model that was never wrapped.
"""
import contextlib
import time
import zlib

import numpy as np

from .. import distributed as dist
from ..backend import device_of, to_numpy, xp_of
from ..tensor import queue_final_callback
from ..nn.module import Module

MB = 1 << 20


class _Bucket:
    """Parameters whose gradients travel together in one flat buffer: [gradients..., one flag per parameter]."""

    def __init__(self, named):
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.bounds, start = [], 0
        for p in self.params:
            self.bounds.append((start, start + p.size))
            start += p.size
        self.numel = start
        self.buffer = None          # allocated at the first all-reduce, on the parameters' device
        self.ready = [False] * len(self.params)
        self.pending = len(self.params)
        self.work = None

    def reset(self):
        self.ready = [False] * len(self.params)
        self.pending, self.work = len(self.params), None

    def _buffer_for(self, like):
        xp = xp_of(like)
        if self.buffer is None or self.buffer.dtype != like.dtype or device_of(self.buffer) != device_of(like):
            self.buffer = xp.empty(self.numel + len(self.params), dtype=like.dtype)
        return self.buffer

    def pack(self):
        """Copy every gradient (zeros where there is none) and its flag into the buffer, and point ``.grad``
        at its slice (holding the sum, then the average, once the all-reduce is done); returns the buffer."""
        first = self.params[0].data
        buf = self._buffer_for(first)
        had = np.zeros(len(self.params), dtype=first.dtype)
        for k, (p, (a, b)) in enumerate(zip(self.params, self.bounds)):
            g = p.grad
            if g is None:
                buf[a:b] = 0
                continue
            if g.shape != p.shape or g.dtype != first.dtype or device_of(g) != device_of(first):
                raise RuntimeError(f"DistributedDataParallel: {self.names[k]} has a {g.dtype} gradient of shape "
                                   f"{g.shape} on {device_of(g)}, its bucket holds {first.dtype} on "
                                   f"{device_of(first)}; move or cast the model before wrapping it")
            view = buf[a:b].reshape(p.shape)
            view[...] = g
            p.grad = view           # the engine's array can go now: one copy of the gradients, not two
            had[k] = 1
        buf[self.numel:] = xp_of(buf).asarray(had)      # the flags in one copy (one transfer on a GPU)
        return buf

    def unpack(self, world):
        """After the sum: the average into each parameter's ``.grad`` (a view), None where no rank had one."""
        buf = self.buffer
        if world > 1:
            buf[:self.numel] /= buf.dtype.type(world)
        had = to_numpy(buf[self.numel:])
        for p, (a, b), flag in zip(self.params, self.bounds, had):
            p.grad = buf[a:b].reshape(p.shape) if flag > 0 else None


def assign_buckets(named_params, bucket_bytes, first_bucket_bytes=None):
    """Split (name, parameter) pairs, in the order given, into lists of about ``bucket_bytes`` each (the
    first of about ``first_bucket_bytes``). A parameter never splits; one bigger than the cap gets a bucket
    of its own; parameters of different dtypes or devices never share one."""
    buckets, current, size = [], [], 0
    cap = first_bucket_bytes or bucket_bytes
    for name, p in named_params:
        nbytes = p.size * p.dtype.itemsize
        if current and (size + nbytes > cap or (p.dtype, p.device) != (current[0][1].dtype, current[0][1].device)):
            buckets.append(current)
            current, size, cap = [], 0, bucket_bytes
        current.append((name, p))
        size += nbytes
    if current:
        buckets.append(current)
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over every rank of the job (see the module docstring).

    ``bucket_mb``: megabytes of gradients per all-reduce (25, as PyTorch); ``first_bucket_mb``: the size of
    the first bucket (1), small so that communication starts early in backward. Calls
    ``tinytensor.distributed.init()`` when nobody has yet (call ``init("nccl")`` first for a model on a
    GPU); in a world of one process it still works (the
    all-reduces return at once), so the same script runs with and without mpiexec.

    After each synchronised backward, ``sync_seconds`` is the time DDP spent in it (packing buckets,
    starting and polling all-reduces, waiting, handing out averages) and ``wait_seconds`` the part of that
    spent blocked after backward for all-reduces still running. ``buckets`` and ``frozen`` show the layout.
    """

    def __init__(self, module, bucket_mb=25, first_bucket_mb=1):
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps an nn.Module, not {type(module).__name__}")
        for label, value in (("bucket_mb", bucket_mb), ("first_bucket_mb", first_bucket_mb)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"DistributedDataParallel: {label} must be a positive number of megabytes, got {value!r}")
        dist.init()
        self.module = module
        self.world = dist.world_size()
        named = list(module.named_parameters())
        _check_same_model(named)
        for _, p in named:                               # every rank starts from rank 0's weights
            dist.broadcast(p.data, src=0)
        trainable = [(n, p) for n, p in named if p.requires_grad]
        self.frozen = [(n, p) for n, p in named if not p.requires_grad]
        groups = assign_buckets(trainable[::-1], bucket_mb * MB, first_bucket_mb * MB)
        self.buckets = [_Bucket(g) for g in groups]
        self._where = {id(p): (bucket, k) for bucket in self.buckets for k, p in enumerate(bucket.params)}
        self._handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for _, p in trainable]
        self._sync = True
        self._in_pass = False
        self._next = 0                      # index of the next bucket to start in this pass
        self._oldest = 0                    # index of the oldest bucket whose all-reduce may still run
        self.sync_seconds = 0.0             # time the last synchronised backward spent here (copies, waits)
        self.wait_seconds = 0.0             # of which blocked at its end waiting for all-reduces

    # ----- what passes through to the wrapped model -----
    def forward(self, *args, **kwargs):
        if self._in_pass:       # the last backward raised before it ended: forget its half-done pass
            self._in_pass = False
        return self.module(*args, **kwargs)

    def named_parameters(self, prefix=""):
        return self.module.named_parameters(prefix)

    def __getattr__(self, name):              # only for names the wrapper itself lacks: model.cfg, ...
        module = self.__dict__.get("module")
        if module is None:
            raise AttributeError(name)
        return getattr(module, name)

    def extra_repr(self):
        return f"world_size={self.world}, buckets={len(self.buckets)}"

    @contextlib.contextmanager
    def no_sync(self):
        """Inside: backward only accumulates gradients locally. The first backward after it averages the sums."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    # ----- during backward -----
    def _grad_ready(self, p):
        """Post-accumulate-grad hook: ``p.grad`` is final for this pass."""
        if not self._sync:
            return
        start = time.perf_counter()
        if not self._in_pass:
            self._begin_pass()
        bucket, k = self._where[id(p)]
        if not bucket.ready[k]:
            bucket.ready[k] = True
            bucket.pending -= 1
            if bucket.pending == 0:
                self._start_ready_buckets()
        self._poll()
        self.sync_seconds += time.perf_counter() - start

    def _poll(self):
        """MPI moves a non-blocking all-reduce's data only while some MPI call runs: test the oldest in flight."""
        while self._oldest < self._next and self.buckets[self._oldest].work.is_completed():
            self._oldest += 1

    def _begin_pass(self):
        self._check_frozen()
        self._in_pass, self._next, self._oldest = True, 0, 0
        self.sync_seconds = self.wait_seconds = 0.0
        for bucket in self.buckets:
            bucket.reset()
        queue_final_callback(self._finish_pass)

    def _start_ready_buckets(self, everything=False):
        """Start the buckets whose gradients are all final, in index order; ``everything``: the rest too."""
        while self._next < len(self.buckets) and (everything or self.buckets[self._next].pending == 0):
            bucket = self.buckets[self._next]
            bucket.work = dist.all_reduce(bucket.pack(), op="sum", async_op=True)
            self._next += 1

    def _finish_pass(self):
        """When backward() has ended: start what still waits, wait for all, hand out the averages."""
        start = time.perf_counter()
        try:
            self._start_ready_buckets(everything=True)
            for bucket in self.buckets:
                bucket.work.wait()
            self.wait_seconds = time.perf_counter() - start
            for bucket in self.buckets:
                bucket.unpack(self.world)
        finally:
            self._in_pass = False
            self.sync_seconds += time.perf_counter() - start

    def _check_frozen(self):
        for name, p in self.frozen:
            if p.requires_grad:
                raise RuntimeError(f"DistributedDataParallel: {name} was frozen when the model was wrapped and "
                                   "now requires grad; its gradient would not be averaged. Wrap the model again "
                                   "after changing requires_grad")


def _check_same_model(named):
    """Every rank must hold the same parameters (names, shapes, dtypes, order), or the buckets would not line
    up: compare a checksum of them across ranks and say so on every rank when they differ."""
    text = ";".join(f"{n}:{p.shape}:{p.dtype}" for n, p in named)
    mine = np.array([len(named), zlib.crc32(text.encode())], dtype=np.int64)
    low, high = mine.copy(), mine.copy()
    dist.all_reduce(low, op="min")
    dist.all_reduce(high, op="max")
    if not (np.array_equal(low, mine) and np.array_equal(high, mine)):
        raise RuntimeError("DistributedDataParallel: the ranks hold different models (parameter names, shapes or "
                           "dtypes differ); build the same model on every rank before wrapping it")
