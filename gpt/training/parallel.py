"""Pretraining on many processes: what ``mpiexec -n N python -m gpt train`` changes, all in one place.

    mpiexec -n 4 python -m gpt train --batch-size 32    # 4 processes, 8 of every 32 windows each

The run is the one a single process would make (nanoGPT's torchrun recipe, on MPI; torchrun's
RANK/WORLD_SIZE are ``dist.rank()``/``dist.world_size()`` here, its DDP is ``nn.DistributedDataParallel``):

- Rank 0 leads. It alone reads the text and the run folder (and holds its run lock), prepares the run as
  pretrain.py does for one process, prints, evaluates, samples and writes checkpoints. The other ranks
  follow: they receive from it what training needs (the settings, the model's shape, the training tokens,
  the data position, the optimizer state: ``lead`` / ``follow``), and DistributedDataParallel gives them
  its weights. So they need neither the text nor the folder: another machine needs only this code.
- ``--batch-size`` stays the global batch. Every rank draws the same batches from the same resumable
  sampler and trains on its own rows of each (``share``); DDP averages the gradients, so every rank takes
  the same step; the loss shown is the mean over the ranks (``mean``). The numbers do not depend on N,
  to float rounding.
- Dropout: each rank has its own random stream, rank r the one-process stream jumped r times (rank 0's is
  the one-process stream itself). Every checkpoint records all N (``checkpoint``: "parallel" in
  checkpoint.json), so ``--resume`` with the same N continues exactly; another N is refused
  (checkpoint.check_processes).
- Stopping: Ctrl-C, SIGTERM or a closed output may reach the ranks at different steps. Before each step
  they agree (``ParallelRun.should_stop``, one small all-reduce), stop at the same step, and rank 0 saves once.
- Failing: an error on any rank ends every rank with that rank's one-line error (gpt/errors.py calls
  ``end_job``, called by gpt/cli/report.py), so no rank is left waiting in a collective.

Ranks that wait for rank 0 (while it prepares, evaluates or saves) test their collective every
millisecond instead of spinning a core (``_wait``).

The loop itself is pretrain.py's, unchanged: it asks the run for each move, and a ``ParallelRun`` (a
pretrain.Run) answers for its rank: ``should_stop`` (agreed), ``next_batch`` (this rank's rows),
``take_step`` (gradients averaged by DDP, the loss over every rank), ``evaluate`` (rank 0 alone),
``save`` (every rank's random state, rank 0 writes). Nothing in pretrain.py imports this module:
``gpt.train`` (launch.py) chooses it when mpiexec started the process.
"""
import contextlib
import dataclasses
import json
import os
import signal
import time
import warnings
from dataclasses import dataclass

import numpy as np

import tinytensor as tt
import tinytensor.distributed as dist
from tinytensor import nn, random
from tinytensor.schedule import parallel
from tinytensor.backend import to_numpy

from ..data import BatchSampler, SlidingWindowDataset
from ..errors import TrainingError
from . import checkpoint as ckpt
from . import pretrain, run_folder
from .progress import ProgressBar
from .settings import TrainSettings
from .stopping import StopFlag

# the Run fields (pretrain.py) that followers take from rank 0 as they are
_RUN_FIELDS = ("corpus", "digest", "n_tokens", "max_steps", "warmup", "min_lr", "step", "resumed", "saved_step",
               "elapsed_before")



class Team:
    """This process's part in a training run: rank ``rank`` of ``world`` (see the module docstring)."""

    def __init__(self, rank=0, world=2, backend="none"):
        self.rank, self.world, self.backend = rank, world, backend
        self.sent = False            # rank 0 has begun sending the run: the followers no longer wait for it

    @property
    def leader(self):
        """True on rank 0: it alone prints, evaluates and writes."""
        return self.rank == 0

    def __repr__(self):
        return f"Team(rank={self.rank}, world={self.world}, backend={self.backend!r})"

    # ----- before the run: rank 0 checks, sends, wraps -----
    def check(self, settings):
        """Refuse (TrainingError) what cannot run on this many processes: a --batch-size that does not split
        over them, --zero with float16, a GPU run started without NCCL."""
        if settings.batch_size % self.world:
            raise TrainingError(f"--batch-size {settings.batch_size} does not split over the {self.world} processes "
                                f"of mpiexec -n {self.world}: --batch-size is the global batch, give a multiple of "
                                f"{self.world} (or another -n)")
        if settings.zero and settings.dtype == "float16":
            raise TrainingError("--zero does not combine with --dtype float16: the loss scaler would check only this "
                                "process's share of the gradients; leave out one of them")
        if settings.device != "cpu" and self.backend != "nccl":
            raise TrainingError(f"this run trains on {settings.device}: under mpiexec pass --device "
                                f"{settings.device} on the command line, so that every rank joins NCCL before "
                                "reading anything")

    def lead(self, run, meta=None, say=print):
        """Rank 0, once ``prepare`` made ``run``: send the followers what they need and return the run as a
        ParallelRun, its model in DistributedDataParallel (its optimizer ZeRO-1 with --zero). ``meta``: the
        checkpoint resumed."""
        states = _random_states(meta, self.world, run.settings.out)
        opt_arrays, opt_meta = ckpt.optimizer_arrays(run.optimizer) if run.resumed else ({}, {})
        self.sent = True
        windows, sampler = run.train_set, run.sampler
        described = {"args": run.settings.to_dict(), "config": run.cfg.to_dict(),
                     "run": {name: getattr(run, name) for name in _RUN_FIELDS},
                     "windows": [windows.max_length, windows.stride],
                     "sampler": {"batch_size": sampler.batch_size, "seed": sampler.seed, "shuffle": sampler.shuffle,
                                 "state": sampler.state_dict()},
                     "rng": states, "optimizer": opt_meta, "grad_scaler": run.scaler.state_dict()}
        _broadcast(self, described, {"ids": windows.ids, **{"optimizer." + k: v for k, v in opt_arrays.items()}})
        run = ParallelRun.of(run, self)
        say(f"data parallel: {self.world} processes ({self.backend}), {run.settings.batch_size // self.world} "
            f"windows of every batch of {run.settings.batch_size} each, {tt.config.threads} thread(s) per process"
            f"{', ZeRO-1 optimizer state' if run.zero else ''}\n")
        return run

    def share(self, batch):
        """This rank's rows of a global batch (inputs, targets): rows [r * B/N, (r + 1) * B/N)."""
        n = len(batch[0]) // self.world
        rows = slice(self.rank * n, (self.rank + 1) * n)
        return tuple(part[rows] for part in batch)

    def release(self, status):
        """Rank 0, failing before it sent the run: the waiting followers end quietly with ``status``, so
        the job ends as one process would (rank 0's one line, no abort). False when too late for that."""
        if not self.leader or self.sent:
            return False
        self.sent = True
        _wait(dist.broadcast(np.array([-max(int(status), 1)], dtype=np.int64), src=0, async_op=True))
        return True


@dataclass
class ParallelRun(pretrain.Run):
    """A pretrain.Run on one rank of a team: the loop's moves, agreed with the other ranks."""
    team: Team = None
    zero: bool = False               # the optimizer is a ZeroRedundancyOptimizer (--zero)

    @classmethod
    def of(cls, run, team):
        """``run`` on ``team``: its model in DistributedDataParallel (every rank starts from rank 0's
        weights), its optimizer ZeRO-1 with --zero."""
        run = cls(**{f.name: getattr(run, f.name) for f in dataclasses.fields(pretrain.Run)}, team=team)
        run.model = nn.DistributedDataParallel(run.model)
        if run.settings.zero:
            state = run.optimizer.state_dict()
            run.optimizer = dist.ZeroRedundancyOptimizer(run.optimizer.param_groups, type(run.optimizer))
            run.optimizer.load_state_dict(state)
            run.zero = True
        return run

    def resume_command(self):
        """The command that continues this run: under mpiexec with this team's number of processes."""
        return ckpt.resume_command(self.team.world, self.settings.out)

    def should_stop(self, stop):
        """Every rank calls it before each step: a request on any rank stops all of them here, at the same
        step (a rank without a request of its own takes the exit status of another's)."""
        flags = np.array([1 if stop else 0, stop.exit_code if stop else 0], dtype=np.int64)
        _wait(dist.all_reduce(flags, op="max", async_op=True))
        if flags[0] and not stop:
            stop.request("a stop on another rank", int(flags[1]))
        return bool(flags[0])

    def next_batch(self):
        """This rank's rows of the next global batch."""
        return self.team.share(super().next_batch())

    def take_step(self, batches, no_sync=None):
        """The step on this rank's rows (DDP averages the gradients once, after the last micro-batch); its
        loss is the mean over the ranks (each rank's is the mean over its rows only)."""
        result = super().take_step(batches, no_sync=self.model.no_sync)
        loss = np.array([result.loss], dtype=np.float64)
        dist.all_reduce(loss, op="avg")
        return dataclasses.replace(result, loss=float(loss[0]))

    def evaluate(self, show, stop=None):
        """Rank 0 alone evaluates and samples."""
        return super().evaluate(show, stop) if self.team.leader else None

    def save(self, extra=None, optimizer=None):
        """A collective: every rank calls it at every save, rank 0 alone writes. checkpoint.json's
        "parallel" field records every rank's random state; a ZeRO optimizer's state is gathered here."""
        states = _gather_json(self.team, random.get_state())
        optimizer = _Saved(self.optimizer.state_dict()) if self.zero else self.optimizer
        if self.team.leader:
            super().save({"parallel": {"world_size": self.team.world, "rng": states}}, optimizer)
        self.saved_step = self.step


_team = None                     # the Team of this process's latest run under mpiexec (for end_job)
_held = contextlib.ExitStack()   # BLAS held to this rank's threads (join)


class _Saved:
    """A gathered optimizer state, saved by rank 0 as the optimizer itself would be (``state_dict``)."""

    def __init__(self, state):
        self._state = state

    def state_dict(self):
        return self._state


def join(device="cpu"):
    """This process's Team. Under an MPI launcher: ``dist.init`` (NCCL too for a GPU ``device``, one GPU
    per rank) and, with several processes, their share of this machine's cores each, as tinytensor's
    threads and NumPy's BLAS threads (torchrun gives each process one OpenMP thread). None when this
    process trains alone (no launcher, or ``mpiexec -n 1``)."""
    global _team
    if not dist.launched_by_mpi():
        return None
    try:
        dist.init("nccl" if device != "cpu" else "mpi")
    except RuntimeError as e:                       # no mpi4py, no CuPy or GPU: this rank says it (end_job)
        raise TrainingError(f"--device {device} under mpiexec: {e}" if device != "cpu" else str(e)) from None
    if dist.world_size() == 1:
        return None
    threads = threads_per_rank(dist.world_size())
    tt.set_num_threads(threads)
    _held.close()
    _held.enter_context(parallel.blas_threads(threads))     # NumPy's BLAS too, for the rest of the process
    _team = Team(dist.rank(), dist.world_size(), dist.get_backend())
    return _team


def end_job(message, status):
    """After an error on this process (gpt/cli/report.py, before it prints ``message``): under mpiexec with
    several processes, make sure the whole job ends. Rank 0 still preparing releases the waiting ranks
    and returns, to end as one process would; otherwise this rank's one-line error ends every process now
    (``dist.abort``), ranks other than 0 a second later, so that when every rank fails alike rank 0's line
    is the one shown. Before MPI has started here, the same through mpiexec itself (other ranks may be
    waiting in MPI's start-up for this one). Does nothing in a process of its own."""
    if not dist.is_initialized():
        if run_folder.mpi_size() < 2:
            return
        rank = run_folder.mpi_rank()
    elif dist.world_size() < 2 or (_team is not None and _team.release(status)):
        return
    else:
        rank = dist.rank()
    if rank != 0:
        time.sleep(1.0)
    dist.abort(message, status)


def threads_per_rank(world, cores=None, environ=None):
    """Threads for each rank: this machine's cores over the ranks on it (mpiexec tells each process how
    many share its machine: MPICH's MPI_LOCALNRANKS, Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE; else all
    ``world``), at least 1, at most tinytensor's usual number."""
    environ = os.environ if environ is None else environ
    cores = cores or tt.config.usable_cpus()
    here = world
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        if environ.get(name, "").isdigit() and int(environ[name]) > 0:
            here = int(environ[name])
            break
    return max(1, min(tt.config.threads, cores // here))


def train(team, settings, resume=False, overwrite=False, given=(), stream=None, stop_at=None, on_step=None,
          on_eval=None):
    """``gpt.train`` on rank ``team.rank`` of ``team.world`` (launch.py calls it): rank 0 runs pretrain.train,
    leading the team; the other ranks follow. Returns a summary as pretrain.train does."""
    if team.leader:
        return pretrain.train(settings, resume, overwrite, given, stream, stop_at, on_step, on_eval, team=team)
    return follow(team, stop_at, on_step)


def follow(team, stop_at=None, on_step=None):
    """Ranks 1..N-1 of ``train``: receive the run rank 0 prepared and train it in step with rank 0,
    printing nothing. Returns a summary as ``train`` does."""
    ctrl_c = signal.signal(signal.SIGINT, signal.SIG_IGN)    # while rank 0 prepares, it answers a Ctrl-C for all
    try:
        described, arrays = _broadcast(team)
    finally:
        signal.signal(signal.SIGINT, ctrl_c)
    settings = TrainSettings(**described["args"])
    cfg = ckpt.load_config({"config": described["config"]})     # the model's config, as a checkpoint holds it
    train_set = SlidingWindowDataset(arrays.pop("ids"), *described["windows"])
    s = described["sampler"]
    sampler = BatchSampler(train_set, s["batch_size"], seed=s["seed"], shuffle=s["shuffle"])
    sampler.load_state_dict(s["state"])
    model, optimizer = pretrain.model_and_optimizer(settings, cfg, None)
    if arrays:
        optimizer.load_state_dict(ckpt.optimizer_state_from_arrays(
            {k.removeprefix("optimizer."): v for k, v in arrays.items()}, described["optimizer"]))
    random.set_state(described["rng"][team.rank])
    scaler = tt.GradScaler(enabled=settings.dtype == "float16")      # rank 0's loss scale, as it restored it
    if settings.dtype == "float16":
        scaler.load_state_dict({**described["grad_scaler"], "enabled": True})
    run = pretrain.Run(settings=settings, cfg=cfg, tok=None, train_set=train_set, val_set=None, sampler=sampler,
                       model=model, optimizer=optimizer, scaler=scaler, **described["run"])
    run = ParallelRun.of(run, team)
    stop = StopFlag(quiet=True)                    # rank 0 says that it is stopping
    with open(os.devnull, "w") as nowhere, stop, warnings.catch_warnings():
        if settings.dtype == "float16":              # an overflow only skips a step (GradScaler): no warning
            warnings.filterwarnings("ignore", r"(overflow|invalid value) encountered", RuntimeWarning)
        run.started = time.perf_counter()
        status = pretrain.loop(run, stop, ProgressBar(run.max_steps, initial=run.step, stream=nowhere), stop_at,
                               on_step)
    return {"status": status, "step": run.step, "wall_s": time.perf_counter() - run.started, "history": [],
            "loss": run.last_loss, "out": settings.out, "stopped_by": stop.reason,
            "exit_code": stop.exit_code if status == "interrupted" else 0}


# ----- checkpoints of a team -----

def _random_states(meta, world, where):
    """Every rank's random state to start from: the checkpoint's (checked), or for a new run rank 0's
    present state and, for rank r, the same stream jumped r times."""
    if meta is not None:
        states = meta["parallel"]["rng"]
        for state in states:
            _check_state(state, where)
        return states
    mine = random.get_state()
    return [mine] + [_jumped(mine, r) for r in range(1, world)]


def _bit_generator(state):
    kind = random.get_state()["bit_generator"]            # this library's (NumPy's default, PCG64)
    if not isinstance(state, dict) or state.get("bit_generator") != kind:
        raise ValueError(f"not a {kind} state")
    bits = getattr(np.random, kind)()
    bits.state = state
    return bits


def _check_state(state, where):
    try:
        _bit_generator(state)
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise TrainingError(f"cannot resume from {where}: a random state in checkpoint.json's 'parallel' field is "
                            f"damaged ({e})") from None


def _jumped(state, times):
    """``state`` advanced ``times`` x 2^127 draws (``jumped``): streams that never meet in practice."""
    return _bit_generator(state).jumped(times).state


# ----- moving JSON and arrays between ranks -----

def _wait(work):
    """Finish an ``async_op`` collective, testing it every millisecond after the first two instead of
    spinning (MPI only moves its data while a call runs): a rank waiting for rank 0 leaves it the core."""
    spin_until = time.perf_counter() + 0.002
    while not work.is_completed():
        if time.perf_counter() > spin_until:
            time.sleep(0.001)
    work.wait()


def _broadcast(team, described=None, arrays=None):
    """Rank 0's ``described`` (JSON) and ``arrays`` ({name: array}) on every rank; the others pass nothing."""
    if team.leader:
        arrays = {name: np.ascontiguousarray(to_numpy(v)) for name, v in arrays.items()}
        header = json.dumps({"described": described,
                             "arrays": [[name, str(v.dtype), list(v.shape)] for name, v in arrays.items()]}).encode()
        text = np.frombuffer(header, dtype=np.uint8).copy()
        size = np.array([text.size], dtype=np.int64)
    else:
        size = np.zeros(1, dtype=np.int64)
    _wait(dist.broadcast(size, src=0, async_op=True))
    if size[0] < 0:                              # rank 0 failed and said so (Team.release): end as it does
        raise SystemExit(int(-size[0]))
    if not team.leader:
        text = np.empty(int(size[0]), dtype=np.uint8)
    _wait(dist.broadcast(text, src=0, async_op=True))
    header = json.loads(text.tobytes())
    received = {}
    for name, dtype, shape in header["arrays"]:
        buf = arrays[name] if team.leader else np.empty(shape, dtype=dtype)
        if buf.size:
            _wait(dist.broadcast(buf, src=0, async_op=True))
        received[name] = buf
    return header["described"], received


def _gather_json(team, value):
    """Every rank's ``value`` (JSON), in rank order, on every rank."""
    mine = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
    longest = np.array([mine.size], dtype=np.int64)
    _wait(dist.all_reduce(longest, op="max", async_op=True))
    slots = np.zeros((team.world, int(longest[0])), dtype=np.uint8)     # each rank fills its own row
    slots[team.rank, :mine.size] = mine
    _wait(dist.all_reduce(slots, op="sum", async_op=True))
    return [json.loads(row.tobytes().rstrip(b"\0")) for row in slots]   # JSON text never holds a NUL byte

