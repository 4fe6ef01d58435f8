"""Compare our training step in two checkouts of tinytensor, A and B, by alternating fresh processes.

    python benchmarks/ab_bench.py /path/to/checkout-A /path/to/checkout-B --shape tiny --steps 15 --rounds 8
    taskset -c 0 python benchmarks/ab_bench.py A B --threads 1      # one core, one thread everywhere

On a machine whose speed drifts by several percent from minute to minute, two versions timed one after
the other differ by the drift; timed in alternating processes (A B, then B A, ...), the drift falls on both.
Each process builds the model of ``--shape`` from its own checkout (benchmarks/train_bench.py's
``make_ours``), runs one untimed step, then ``--steps`` timed ones, and reports their median; the summary
is the median of those medians per checkout. ``--threads N`` gives every child N threads: tinytensor's
(``set_num_threads``) and BLAS's (OPENBLAS/OMP/MKL_NUM_THREADS); by default each keeps its own choice.
"""
import argparse
import os
import statistics
import subprocess
import sys

CHILD = """
import statistics, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
import train_bench
if int(sys.argv[4]):
    import tinytensor
    tinytensor.set_num_threads(int(sys.argv[4]))
step = train_bench.make_ours(train_bench.SHAPES[sys.argv[2]])
step()
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def time_checkout(path, shape, steps, threads=0):
    """Median seconds of ``steps`` training steps of ``shape``, in a fresh process using ``path``'s code
    (with ``threads`` threads for tinytensor and BLAS when not 0)."""
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    out = subprocess.run([sys.executable, "-c", CHILD, path, shape, str(steps), str(threads)], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"error: the step failed in {path}:\n{out.stderr.strip()}")
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="checkout A (a folder holding tinytensor/, gpt/ and benchmarks/)")
    parser.add_argument("b", help="checkout B")
    parser.add_argument("--shape", default="tiny", choices=["tiny", "small", "gpt2"])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per process (default 15)")
    parser.add_argument("--rounds", type=int, default=8, help="processes per checkout (default 8)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for tinytensor and BLAS in every child (default 0: their own choice)")
    args = parser.parse_args()
    for path in (args.a, args.b):
        if not os.path.isfile(os.path.join(path, "benchmarks", "train_bench.py")):
            parser.error(f"{path} is not a tinytensor checkout (no benchmarks/train_bench.py)")
    results = {args.a: [], args.b: []}
    for r in range(args.rounds):
        for path in (args.a, args.b) if r % 2 == 0 else (args.b, args.a):
            results[path].append(time_checkout(path, args.shape, args.steps, args.threads))
            print(f"round {r + 1}/{args.rounds}: {path}: {results[path][-1] * 1000:.1f} ms", flush=True)
    for name, path in (("A", args.a), ("B", args.b)):
        ms = [t * 1000 for t in results[path]]
        print(f"{name} {path}: median of medians {statistics.median(ms):.1f} ms "
              f"(runs {', '.join(f'{t:.1f}' for t in ms)})")


if __name__ == "__main__":
    main()
