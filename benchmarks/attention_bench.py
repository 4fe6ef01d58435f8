"""Causal attention alone, forward + backward, ours against PyTorch's scaled_dot_product_attention.

    /tmp/bench/bin/python benchmarks/attention_bench.py                      # training and long shapes
    python benchmarks/attention_bench.py --shapes 1x4x2048x32 --checkouts /tmp/old,. --rounds 6

q, k and v are laid out as a GPT makes them: strided views of one (B, T, 3, H, D) array (the qkv
projection's output), transposed to (B, H, T, D), each a leaf (so only attention's own work is timed).
A shape is BxHxTxD; the named ones are train_bench's (tiny, small, gpt2) and long_context_bench's heads
at T = 512, 2048, 8192. Every measurement is a fresh
process (warm-up calls, then the median of ``--repeats`` timed forward + backward calls), the
frameworks or checkouts alternating (A B, then B A, ...); the summary gives medians over the rounds.
Threads: as many as the process may use (``taskset``), for both frameworks; both processes reuse freed
memory (``tt.tune_heap()``, as train_bench.py: without it, ours pays ~2,000 page faults a call on tiny).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMED = {"tiny": (16, 4, 128, 32), "small": (8, 6, 256, 64), "gpt2": (4, 12, 256, 64),
         "long512": (1, 4, 512, 32), "long2048": (1, 4, 2048, 32), "long8192": (1, 4, 8192, 32)}
DEFAULT = "tiny,small,gpt2,long512,long2048,long8192"

WORKER = """
import os, statistics, sys, time
sys.path.insert(0, {root!r})
import numpy as np
import tinytensor
tinytensor.tune_heap()              # freed memory reused, as train_bench.py and `python -m gpt train` ask for
B, H, T, D = {shape!r}
threads = len(os.sched_getaffinity(0))
rng = np.random.default_rng(0)
qkv = rng.standard_normal((B, T, 3, H, D)).astype(np.float32)
grad = rng.standard_normal((B, H, T, D)).astype(np.float32)
if {framework!r} == "torch":
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    q, k, v = (t.requires_grad_() for t in torch.from_numpy(qkv).permute(2, 0, 3, 1, 4).unbind(0))
    g = torch.from_numpy(grad)
    def call():
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
        q.grad = k.grad = v.grad = None
else:
    import tinytensor as tt
    import tinytensor.functional as F
    tt.set_num_threads(threads)
    q, k, v = (tt.Tensor(t, requires_grad=True) for t in qkv.transpose(2, 0, 3, 1, 4))
    def call():
        F.scaled_dot_product_attention(q, k, v, causal=True).backward(grad)
        q.grad = k.grad = v.grad = None
n = max(3, min(50, int(3e8 // (B * H * T * T))))
for _ in range(2):
    call()
times = []
for _ in range({repeats} * n):
    t0 = time.perf_counter()
    call()
    times.append(time.perf_counter() - t0)
print(1000 * statistics.median(times))
"""


def measure(framework, shape, repeats, root):
    code = WORKER.format(root=str(Path(root).resolve()), shape=shape, framework=framework, repeats=repeats)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{framework} {shape} ({root}) failed:\n{proc.stderr.strip()}")
    return float(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=DEFAULT, help="names or BxHxTxD, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per entry and shape")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per process (times a few)")
    parser.add_argument("--checkouts", help="A,B: ours from two checkouts of the code (no PyTorch)")
    parser.add_argument("--json", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    shapes = [NAMED.get(s) or tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]
    if args.checkouts:
        entries = [("ours", root) for root in args.checkouts.split(",")]
        labels = args.checkouts.split(",")
    else:
        entries, labels = [("ours", HERE.parent), ("torch", HERE.parent)], ["ours", "torch"]
    print(f"{len(os.sched_getaffinity(0))} usable cores; causal, float32, fwd + bwd; {args.rounds} rounds",
          flush=True)
    results = {(label, shape): [] for label in labels for shape in shapes}
    for rnd in range(args.rounds):
        order = list(zip(labels, entries))
        order = order if rnd % 2 == 0 else order[::-1]
        for shape in shapes:
            for label, (framework, root) in order:
                ms = measure(framework, shape, args.repeats, root)
                results[label, shape].append(ms)
                print(f"round {rnd + 1} {'x'.join(map(str, shape)):>14s} {label:>12s} {ms:9.3f} ms", flush=True)
    speed = "speed B/A (A ms / B ms)" if args.checkouts else "speed ours/torch (torch ms / ours ms)"
    print("\n| B x H x T x D | " + " | ".join(f"{label} ms" for label in labels) + f" | {speed} |")
    print("|" + " --- |" * (len(labels) + 2))
    for shape in shapes:
        med = [statistics.median(results[label, shape]) for label in labels]
        ratio = med[0] / med[1] if args.checkouts else med[1] / med[0]
        print(f"| {'x'.join(map(str, shape))} | " + " | ".join(f"{m:,.2f}" for m in med) + f" | {ratio:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{label} {shape}": r for (label, shape), r in results.items()}))


if __name__ == "__main__":
    main()
