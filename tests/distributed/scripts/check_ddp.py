"""DistributedDataParallel on every rank of ``mpiexec -n N`` (run by tests/distributed/test_ddp_mpi.py).

    mpiexec -n 2 python tests/distributed/scripts/check_ddp.py OUT.npz

1. A small GPT trained with a global batch of B rows, each rank taking B / N of them, with and without
   gradient accumulation under no_sync(): rank 0 writes the losses and final weights of both to OUT.npz;
   the test compares them with one process trained on all B rows (``train`` below, without DDP).
2. A model with a frozen, an unused and a rank-0-only parameter: the buckets hold every trainable
   parameter exactly once and no frozen one, and the gradients equal those of the global batch's mean
   computed in one process.
Each rank prints "ok rank R" at the end.
"""
import contextlib
import sys

import numpy as np

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.functional as F
from tinytensor import nn, optim

STEPS, BATCH, T = 20, 8, 16


def config():
    import gpt
    # no qkv bias: the key bias's exact gradient is zero (softmax ignores a shift), so AdamW would turn its
    # rounding noise into full-size steps that differ with the summation order
    return gpt.GPTConfig(vocab_size=61, context_length=T, emb_dim=32, n_layers=2, n_heads=2, drop_rate=0.0,
                         qkv_bias=False)


def batches():
    rng = np.random.default_rng(1234)
    ids = rng.integers(0, 61, (STEPS, BATCH, T + 1))
    return [(b[:, :-1], b[:, 1:]) for b in ids]


def train(model, accum=1, rank=0, world=1, zero=False):
    """AdamW steps on the global batches; each step's batch split into ``accum`` micro-batches, each of those
    split over ``world`` ranks (this rank takes share ``rank``). Returns the global-batch losses and the
    optimizer (``zero``: AdamW sharded over the ranks by ZeroRedundancyOptimizer)."""
    if zero:
        opt = dist.ZeroRedundancyOptimizer(model.parameters(), optim.AdamW, lr=3e-3, weight_decay=0.1)
    else:
        opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    losses = []
    for x, y in batches():
        micro = BATCH // accum
        share = micro // world
        total = 0.0
        for m in range(accum):
            rows = slice(m * micro + rank * share, m * micro + (rank + 1) * share)
            last = m == accum - 1
            quiet = hasattr(model, "no_sync") and not last        # DDP: reduce only on the last micro-batch
            with model.no_sync() if quiet else contextlib.nullcontext():
                loss = F.cross_entropy(model(x[rows]), y[rows]) * (1.0 / accum)
                loss.backward()
            total += loss.item()
        total = np.array(total)
        dist.all_reduce(total, op="avg")          # the global batch's loss, as one process would print it
        losses.append(float(total))
        opt.step()
        opt.zero_grad()
    return np.array(losses), opt


def gpt_runs(out):
    """DDP with and without accumulation (rank 0 saves both for the test), then DDP with ZeRO: the same."""
    import gpt
    rank, world = dist.rank(), dist.world_size()
    results, adamw = {}, None
    for accum, zero in ((1, False), (2, False), (1, True)):
        tt.manual_seed(100 + rank)               # different weights per rank: DDP must broadcast rank 0's
        model = gpt.GPT(config())
        if rank == 0:
            tt.manual_seed(0)
            model = gpt.GPT(config())            # rank 0 holds what the one-process reference starts from
        ddp = nn.DistributedDataParallel(model, bucket_mb=0.05, first_bucket_mb=0.01)
        assert len(ddp.buckets) > 3, len(ddp.buckets)
        losses, opt = train(ddp, accum, rank, world, zero=zero)
        if not zero:
            results[f"losses_{accum}"] = losses
            results.update({f"w{accum}.{name}": value for name, value in ddp.state_dict().items()})
            adamw = opt if accum == 1 else adamw
            continue
        # ZeRO: the same losses and weights as plain AdamW, bit for bit; each rank holds part of the state
        assert np.array_equal(losses, results["losses_1"]), (losses, results["losses_1"])
        for name, value in ddp.state_dict().items():
            assert np.array_equal(value, results[f"w1.{name}"]), name
        held = sum(v.size for s in opt.optimizer.state.values() for v in s.values() if hasattr(v, "size"))
        total = sum(v.size for s in adamw.state.values() for v in s.values() if hasattr(v, "size"))
        assert 0 < held < total * 0.75, (held, total)
        gathered, plain = opt.state_dict(), adamw.state_dict()
        assert gathered["param_groups"] == plain["param_groups"] and gathered["state"].keys() == plain["state"].keys()
        for i, entry in plain["state"].items():
            for key, value in entry.items():
                assert np.array_equal(gathered["state"][i][key], value), (i, key)
        again = dist.ZeroRedundancyOptimizer(model.parameters(), optim.AdamW, lr=1.0)
        again.load_state_dict(plain)              # a plain AdamW checkpoint loads into the sharded one
        assert again.param_groups[0]["lr"] == 3e-3
        for i, entry in again.state_dict()["state"].items():
            assert all(np.array_equal(v, plain["state"][i][k]) for k, v in entry.items()), i
    if rank == 0:
        np.savez(out, **results)


class Mixed(nn.Module):
    """used: every rank; frozen: requires_grad False; unused: never in the graph; rank0: used by rank 0 only."""

    def __init__(self):
        self.used = nn.Linear(5, 3)
        self.frozen = nn.Linear(3, 3)
        self.frozen.weight.requires_grad_(False)
        self.unused = nn.Linear(3, 2)
        self.rank0 = nn.Linear(3, 1)
        self.scale = nn.Parameter(np.array(1.5, dtype=np.float32))     # a 0-d parameter

    def forward(self, x, use_rank0):
        h = self.frozen(self.used(x).tanh()) * self.scale
        out = (h * h).mean()
        if use_rank0:
            out = out + self.rank0(h).mean()
        return out


def mixed_checks():
    rank, world = dist.rank(), dist.world_size()
    tt.manual_seed(7)
    model = Mixed()
    ddp = nn.DistributedDataParallel(model, bucket_mb=0.0002, first_bucket_mb=0.0001)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    in_buckets = [n for b in ddp.buckets for n in b.names]
    assert sorted(in_buckets) == sorted(trainable), (in_buckets, trainable)          # each exactly once
    assert in_buckets == trainable[::-1], in_buckets                                # reverse registration order
    assert [n for n, _ in ddp.frozen] == ["frozen.weight"]
    xs = [tt.tensor(np.random.default_rng(r).standard_normal((4, 5))) for r in range(world)]
    for _ in range(2):                                                             # a second pass reuses buffers
        ddp.zero_grad()
        ddp(xs[rank], use_rank0=rank == 0).backward()
    # one process, the global batch: the mean of every rank's loss
    reference = Mixed()
    reference.load_state_dict(model.state_dict())
    total = None
    for r in range(world):
        part = reference(xs[r], use_rank0=r == 0) * (1.0 / world)
        total = part if total is None else total + part
    total.backward()
    mine = dict(model.named_parameters())
    for name, p in reference.named_parameters():
        got = mine[name].grad
        if p.grad is None:
            assert got is None, f"{name}: got a gradient where one process has none"
        else:
            np.testing.assert_allclose(got, p.grad, rtol=1e-5, atol=1e-7, err_msg=name)
    assert mine["unused.weight"].grad is None and mine["frozen.weight"].grad is None
    assert mine["rank0.weight"].grad is not None            # rank 1 had none, still gets the average
    with ddp.no_sync():                                      # no_sync: only local gradients
        ddp.zero_grad()
        ddp(xs[rank], use_rank0=False).backward()
    every = dist.all_gather(mine["used.weight"].grad)      # each rank's own gradient, from different data
    assert world == 1 or not np.allclose(every[0], every[1]), "no_sync still averaged"


if __name__ == "__main__":
    dist.init()
    tt.set_num_threads(1)
    gpt_runs(sys.argv[1])
    mixed_checks()
    print(f"ok rank {dist.rank()}", flush=True)
