"""Training steps at long contexts, ours against PyTorch eager: ms per step and peak memory as T grows.

    /tmp/bench/bin/python benchmarks/long_context_bench.py                  # T = 512 ... 8192, 3 rounds
    python benchmarks/long_context_bench.py --contexts 512,1024 --rounds 1 --frameworks ours
    python benchmarks/long_context_bench.py --checkouts /tmp/old,. --contexts 2048 --rounds 6   # old vs new

The model of issue 21's table: a 2-layer GPT, width 128, 4 heads, batch 1, vocabulary 512, float32, the
context as long as the sequence; PyTorch's is benchmarks/torch_gpt.py (``scaled_dot_product_attention``).
Every measurement is a fresh process (one untimed step, then ``--steps`` timed ones; their median), and
the frameworks alternate (ours then PyTorch, then PyTorch then ours, ...), so a machine whose speed drifts
charges both. Peak memory is the process's resident high-water mark above what it held right after its
imports (reset through /proc/self/clear_refs, as train_bench.py does): model, optimizer state,
activations, gradients and scratch, not the libraries. The summary gives medians over the rounds and
checks issue 21's targets. ``--checkouts A,B`` times our step from two checkouts of the code instead,
alternating in the same way (A B, then B A, ...), to measure what a change buys at long contexts.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPE = dict(vocab=512, emb=128, layers=2, heads=4, batch=1)
DEFAULT_STEPS = {512: 10, 1024: 8, 2048: 5, 4096: 3, 8192: 3}

WORKER = """
import json, statistics, sys, time
sys.path[:0] = [{bench!r}, {root!r}]
import train_bench as b
{imports}
weights = None
if {sharpen!r} != 1.0:          # both start from our weights, queries and keys x sqrt(sharpen)
    weights = b.make_ours({shape!r}, return_model=True)[1].state_dict()
    for name, w in weights.items():
        if name.endswith("attn.qkv.weight") or name.endswith("attn.qkv.bias"):
            w[:2 * {emb}] *= {sharpen!r} ** 0.5
def status(key):
    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith(key))
open('/proc/self/clear_refs', 'w').write('5')         # the high-water mark starts again from here
base = status('VmRSS:')
{make}
step()
times = []
for _ in range({steps}):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
print(json.dumps({{"ms": 1000 * statistics.median(times), "peak_mb": (status('VmHWM:') - base) / 1024}}))
"""


def measure(framework, T, steps, root=HERE.parent, sharpen=1.0):
    """One fresh process of ``framework`` ("ours" or "torch") at context T, our code taken from the
    checkout ``root``, every attention score times ``sharpen``: {"ms": ..., "peak_mb": ...}."""
    shape = (SHAPE["vocab"], T, SHAPE["emb"], SHAPE["layers"], SHAPE["heads"], SHAPE["batch"], T)
    imports = ("b.torch_available(); import torch_gpt" if framework == "torch"
               else "import os, tinytensor; tinytensor.set_num_threads(int(os.environ.get("
                    "'OPENBLAS_NUM_THREADS', len(os.sched_getaffinity(0)))))")    # as many threads as torch gets
    make = (f"step = b.make_torch({shape!r}, weights=weights)" if framework == "torch" else
            f"step, model = b.make_ours({shape!r}, return_model=True)\n"
            f"if weights is not None:\n    model.load_state_dict(weights)")
    code = WORKER.format(bench=str(Path(root).resolve() / "benchmarks"), root=str(Path(root).resolve()),
                         imports=imports, shape=shape, steps=steps, make=make, sharpen=float(sharpen),
                         emb=SHAPE["emb"])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{framework} at T={T} failed:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(results, frameworks, contexts):
    """The table (medians over rounds) and issue 21's targets, as lines of text."""
    med = {(f, T): {key: statistics.median(r[key] for r in results[f, T]) for key in ("ms", "peak_mb")}
           for f in frameworks for T in contexts}
    head = "| context T | " + " | ".join(f"{f} ms/step" for f in frameworks)
    head += " | " + " | ".join(f"{f} peak MB" for f in frameworks)
    lines = [head + (" | speed ours/torch |" if len(frameworks) == 2 else " |"),
             "|" + " --- |" * (1 + 2 * len(frameworks) + (len(frameworks) == 2))]
    for T in contexts:
        row = f"| {T:,} | " + " | ".join(f"{med[f, T]['ms']:,.0f}" for f in frameworks)
        row += " | " + " | ".join(f"{med[f, T]['peak_mb']:,.0f}" for f in frameworks)
        if len(frameworks) == 2:
            row += f" | {med['torch', T]['ms'] / med['ours', T]['ms']:.2f}x"
        lines.append(row + " |")
    if "ours" in frameworks and 8192 in contexts:
        peak = med["ours", 8192]["peak_mb"]
        lines.append(f"T=8,192 peak: {peak:,.0f} MB ({'under' if peak < 1024 else 'NOT under'} 1 GB)")
    if len(frameworks) == 2:
        if 512 in contexts and 4096 in contexts:
            ours, theirs = (med[f, 4096]["peak_mb"] - med[f, 512]["peak_mb"] for f in ("ours", "torch"))
            ratio = ours / theirs if theirs > 0 else float("inf")
            lines.append(f"peak growth 512 -> 4,096: ours {ours:,.0f} MB, torch {theirs:,.0f} MB "
                         f"({ratio:.2f}x; target at most 1.5x)")
        slowest = min(contexts, key=lambda T: med["torch", T]["ms"] / med["ours", T]["ms"])
        worst = med["torch", slowest]["ms"] / med["ours", slowest]["ms"]
        lines.append(f"speed: at least {worst:.2f}x PyTorch's at every T (lowest at T={slowest:,}; target 1.0x)")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", default="512,1024,2048,4096,8192", help="comma-separated context lengths")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per framework and context")
    parser.add_argument("--steps", type=int, help="timed steps per process (default: 10 at 512 ... 3 at 8192)")
    parser.add_argument("--frameworks", default="ours,torch", help="ours, torch or both")
    parser.add_argument("--json", help="also write every measurement to this JSON file")
    parser.add_argument("--checkouts", help="A,B: our step from two checkouts, alternating (no PyTorch)")
    parser.add_argument("--sharpen", type=float, default=1.0,
                        help="every attention score times this (query and key weights times its square root; "
                             "both frameworks then start from our weights): sharper attention, as a trained "
                             "model's can be; 1 (default) leaves each its own initialisation")
    args = parser.parse_args()
    contexts = [int(t) for t in args.contexts.split(",")]
    if args.checkouts:
        return compare_checkouts(args.checkouts.split(","), contexts, args.rounds, args.steps, args.sharpen)
    frameworks = [f for f in ("ours", "torch") if f in args.frameworks.split(",")]
    if not frameworks:
        parser.error("--frameworks: name ours, torch or both")
    if "torch" in frameworks:
        sys.path.insert(0, str(HERE))
        import train_bench
        if not train_bench.torch_available():
            parser.error("PyTorch is not installed in this Python: run with /tmp/bench/bin/python, "
                         "or pass --frameworks ours")
    print(f"{os.cpu_count()} cores; shape {SHAPE}, float32; {args.rounds} rounds, fresh process each"
          + (f"; scores x{args.sharpen:g}" if args.sharpen != 1.0 else ""), flush=True)
    results = {(f, T): [] for f in frameworks for T in contexts}
    for rnd in range(args.rounds):
        order = frameworks if rnd % 2 == 0 else frameworks[::-1]
        for T in contexts:
            steps = args.steps or DEFAULT_STEPS.get(T, 3)
            for f in order:
                r = measure(f, T, steps, sharpen=args.sharpen)
                results[f, T].append(r)
                print(f"round {rnd + 1} T={T:5d} {f:5s} {r['ms']:9.1f} ms/step  peak {r['peak_mb']:7.1f} MB",
                      flush=True)
    print("\n".join([""] + summary(results, frameworks, contexts)))
    if args.json:
        Path(args.json).write_text(json.dumps({f"{f} {T}": r for (f, T), r in results.items()}, indent=2))


def compare_checkouts(roots, contexts, rounds, steps=None, sharpen=1.0):
    """Our step from each checkout in ``roots``, alternating fresh processes: medians per context."""
    for root in roots:
        if not (Path(root) / "benchmarks" / "train_bench.py").is_file():
            raise SystemExit(f"{root} is not a tinytensor checkout (no benchmarks/train_bench.py)")
    print(f"{os.cpu_count()} cores; shape {SHAPE}, float32; {rounds} rounds, fresh process each"
          + (f"; scores x{sharpen:g}" if sharpen != 1.0 else ""), flush=True)
    results = {(root, T): [] for root in roots for T in contexts}
    for rnd in range(rounds):
        for T in contexts:
            for root in roots if rnd % 2 == 0 else roots[::-1]:
                r = measure("ours", T, steps or DEFAULT_STEPS.get(T, 3), root, sharpen)
                results[root, T].append(r["ms"])
                print(f"round {rnd + 1} T={T:5d} {root}: {r['ms']:9.1f} ms/step  peak {r['peak_mb']:7.1f} MB",
                      flush=True)
    print()
    for T in contexts:
        meds = [statistics.median(results[root, T]) for root in roots]
        print(f"T={T:,}: " + "  ".join(f"{root} {ms:,.1f} ms" for root, ms in zip(roots, meds))
              + f"  ({meds[0] / meds[-1]:.3f}x)")


if __name__ == "__main__":
    main()
