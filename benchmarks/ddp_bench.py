"""Data-parallel training speed: N processes (mpiexec, one thread each) against one process with N threads.

    python benchmarks/ddp_bench.py                               # 2 ranks, shapes tiny, small, gpt2
    python benchmarks/ddp_bench.py --ranks 1,2,4,8 --shapes small --bind   # a 16-core machine, one command
    python benchmarks/ddp_bench.py --shapes tiny --steps 2       # a quick check that it runs
    python benchmarks/ddp_bench.py --device cuda --ranks 1 --shapes gpt2   # NCCL, one GPU per rank

For each shape (benchmarks/train_bench.py's) and each N it times full training steps (forward,
cross-entropy, backward with DistributedDataParallel's all-reduces, AdamW) of ``mpiexec -n N`` with one
thread per rank, then of one process (no DDP) with N threads, on the same global batch (the shape's batch,
rounded up to a multiple of N so every rank gets whole rows). It reports median tokens/s of both, their
ratio, and the communication: DDP's time per step on the main thread (copying gradients into buckets,
starting and waiting for all-reduces, handing out the averages), the part of it spent blocked at the end
of backward waiting for all-reduces to finish (what overlap did not hide), and a plain blocking all-reduce
of all the gradients at once, timed alone. Shares are of the median step. Rank 0 prints; ``--json`` writes
every number. Each configuration runs in fresh processes, one after the other, with freed memory
reused (``tt.tune_heap()``) as in ``python -m gpt train``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def worker(args):
    """One configuration in this process (all ranks of it under mpiexec); rank 0 writes the results."""
    import gpt
    import tinytensor as tt
    import tinytensor.distributed as dist
    import tinytensor.functional as F
    from tinytensor import nn, optim
    from train_bench import SHAPES
    dist.init("nccl" if args.device == "cuda" else "mpi")     # nccl: one GPU per rank
    rank, world = dist.rank(), dist.world_size()
    tt.set_num_threads(args.threads)
    tt.tune_heap()                  # freed memory reused, as `python -m gpt train` asks for (on every rank)
    vocab, context, emb, layers, heads, batch, T = SHAPES[args.shape]
    global_batch = -(-batch // world) * world
    tt.manual_seed(0)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=vocab, context_length=context, emb_dim=emb, n_layers=layers,
                                  n_heads=heads, drop_rate=0.0, qkv_bias=True)).to(args.device)
    ddp = nn.DistributedDataParallel(model, bucket_mb=args.bucket_mb) if args.ddp else None
    run = ddp or model
    if args.zero:
        opt = dist.ZeroRedundancyOptimizer(run.parameters(), optim.AdamW, lr=1e-4, weight_decay=0.1)
    else:
        opt = optim.AdamW(run.parameters(), lr=1e-4, weight_decay=0.1)
    rng = np.random.default_rng(0)
    share = global_batch // world
    mine = slice(rank * share, (rank + 1) * share)
    x = tt.tensor(rng.integers(0, vocab, (global_batch, T))[mine], device=args.device)
    y = tt.tensor(rng.integers(0, vocab, (global_batch, T))[mine], device=args.device)

    def step():
        loss = F.cross_entropy(run(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.item()          # on a GPU: waits for the step's kernels, so the wall time holds them

    step()                                       # warm-up: first-touch of every buffer
    times, sync, wait = [], [], []
    for _ in range(args.steps):
        if ddp:
            dist.barrier()                       # every rank starts the step together
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if ddp:
            sync.append(ddp.sync_seconds)
            wait.append(ddp.wait_seconds)
    state = getattr(opt, "optimizer", opt).state          # ZeRO: this rank's share only
    memory = np.array([sum(v.nbytes for s in state.values() for v in s.values() if hasattr(v, "nbytes")),
                       peak_rss_bytes()], dtype=np.float64) / 2 ** 20
    dist.all_reduce(memory, op="max")                        # the largest rank's
    result = {"shape": args.shape, "ranks": world, "threads": args.threads, "ddp": bool(ddp), "zero": args.zero,
              "global_batch": global_batch, "step_s": times, "tokens_per_s": global_batch * T / statistics.median(times),
              "optimizer_state_mb": memory[0], "peak_rss_mb": memory[1],
              "heap_tuned": tt.config.heap_tuned}
    if ddp:
        flat = tt.zeros(sum(p.size for p in model.parameters()), device=args.device).data
        blocking = []
        for _ in range(3):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(flat)
            if args.device == "cuda":
                flat.sum().item()                # NCCL runs on the GPU stream: wait for it
            blocking.append(time.perf_counter() - start)
        result.update(ddp_sync_s=sync, ddp_wait_s=wait, allreduce_alone_s=statistics.median(blocking),
                      buckets=len(ddp.buckets), gradient_mb=flat.nbytes / 2 ** 20)
    if rank == 0:
        Path(args.worker_json).write_text(json.dumps(result))


def peak_rss_bytes():
    """This process's peak resident memory (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def run_config(args, shape, n, ddp, zero=False):
    """Run one configuration in fresh processes and return rank 0's results."""
    out = Path(args.tmp) / f"ddp_bench_{shape}_{n}_{'ddp' if ddp else 'threads'}_{zero}.json"
    out.unlink(missing_ok=True)
    threads = 1 if ddp else n
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if args.async_progress:
        env["MPICH_ASYNC_PROGRESS"] = "1"
    command = [sys.executable, __file__, "--worker", "--shape", shape, "--threads", str(threads), "--device", args.device,
               "--steps", str(args.steps), "--bucket-mb", str(args.bucket_mb), "--worker-json", str(out)]
    if zero:
        command.append("--zero")
    if ddp:
        command = [args.mpiexec, "-n", str(n)] + (["-bind-to", "core"] if args.bind else []) + command + ["--ddp"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"{shape}, {n} {'ranks' if ddp else 'threads'} failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def find_mpiexec():
    import shutil
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="tiny,small,gpt2", help="comma-separated: tiny, small, gpt2")
    parser.add_argument("--ranks", default="2", help="comma-separated process counts, e.g. 1,2,4,8")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (after 1 warm-up)")
    parser.add_argument("--bucket-mb", type=float, default=25, help="DistributedDataParallel's bucket_mb")
    parser.add_argument("--bind", action="store_true", help="pin each rank to a core (mpiexec -bind-to core)")
    parser.add_argument("--async-progress", action="store_true",
                        help="MPICH_ASYNC_PROGRESS=1: a thread per rank moves all-reduce data during backward "
                             "(it needs a spare core per rank)")
    parser.add_argument("--no-threads", action="store_true", help="skip the one-process, N-thread runs")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cuda: NCCL between ranks, one GPU each (no N-thread runs then)")
    parser.add_argument("--zero", action="store_true",
                        help="also run DDP with ZeRO-1 (dist.ZeroRedundancyOptimizer around AdamW) and compare memory")
    parser.add_argument("--json", help="also write every result to this JSON file")
    parser.add_argument("--mpiexec", default=None, help="the mpiexec to use (default: beside Python, else PATH)")
    for hidden in ("--worker", "--ddp"):
        parser.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.mpiexec = args.mpiexec or find_mpiexec()
    if args.mpiexec is None:
        raise SystemExit("ddp_bench: no mpiexec found; pip install -e '.[mpi]'")
    ranks = [int(n) for n in args.ranks.split(",")]
    print(f"machine: {os.cpu_count()} cores, numpy {np.__version__}; ranks {ranks}, {args.steps} timed steps each")
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        results = measure(args, ranks)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def measure(args, ranks):
    results = []
    for shape in args.shapes.split(","):
        speed = {}
        for n in ranks:
            ours = run_config(args, shape, n, ddp=True)
            line = (f"{shape:6s} {n:2d} ranks x 1 thread: {ours['tokens_per_s']:9.0f} tok/s "
                    f"(batch {ours['global_batch']}, {ours['buckets']} buckets of {ours['gradient_mb']:.0f} MB)")
            step = statistics.median(ours["step_s"])
            sync, wait = statistics.median(ours["ddp_sync_s"]), statistics.median(ours["ddp_wait_s"])
            line += (f"\n       DDP per step {sync * 1e3:7.1f} ms ({sync / step:.0%} of the step), blocked at the end "
                     f"{wait * 1e3:7.1f} ms ({wait / step:.0%}); one blocking all-reduce of every gradient "
                     f"{ours['allreduce_alone_s'] * 1e3:7.1f} ms ({ours['allreduce_alone_s'] / step:.0%})"
                     f"\n       memory per rank: AdamW state {ours['optimizer_state_mb']:.0f} MB, "
                     f"peak resident {ours['peak_rss_mb']:.0f} MB")
            row = {"ddp": ours}
            if args.zero:
                row["zero"] = zero = run_config(args, shape, n, ddp=True, zero=True)
                line += (f"\n       with ZeRO-1: {zero['tokens_per_s']:9.0f} tok/s; memory per rank: AdamW state "
                         f"{zero['optimizer_state_mb']:.0f} MB, peak resident {zero['peak_rss_mb']:.0f} MB")
            if not args.no_threads and args.device == "cpu":
                alone = run_config(args, shape, n, ddp=False)
                row["threads"] = alone
                line += (f"\n       1 process x {n} threads: {alone['tokens_per_s']:9.0f} tok/s; "
                         f"ranks / threads {ours['tokens_per_s'] / alone['tokens_per_s']:.2f}x")
            print(line, flush=True)
            results.append(row)
            speed[n] = ours["tokens_per_s"]
        if 1 in speed and len(speed) > 1:
            print(f"{shape:6s} speed-up over 1 rank: " + ", ".join(f"{n} ranks {v / speed[1]:.2f}x"
                                                                   for n, v in speed.items() if n != 1), flush=True)
    return results


if __name__ == "__main__":
    main()
