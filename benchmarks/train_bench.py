"""Time full GPT training steps (forward, cross-entropy, backward, AdamW) against PyTorch eager.

    python benchmarks/train_bench.py                 # all three shapes
    python benchmarks/train_bench.py --shapes tiny --steps 7 --profile

For each shape ours and PyTorch's (when torch is installed) take turns, a block of steps each (the
first step of a block untimed), and it reports median tokens/s and the ratio, the flops/s of both against a float32 NumPy matmul measured in the same
run (the CPU's practical ceiling), peak memory of each framework in a fresh subprocess, and optionally
a per-op profile of our step (wall time of each op's forward and backward, threads included).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {  # name: (vocab, context, emb, layers, heads, batch, tokens per row)
    "tiny": (512, 128, 128, 4, 4, 16, 128),
    "small": (8192, 256, 384, 6, 6, 8, 256),
    "gpt2": (50257, 1024, 768, 12, 12, 4, 256),
}


def step_flops(vocab, context, emb, layers, heads, batch, T):
    """About 6 flops per parameter per token for the matmuls, plus attention's QK^T and PV (x3 for backward)."""
    params = layers * 12 * emb * emb + vocab * emb      # the matmul weights (embedding lookups are free)
    attention = layers * 2 * 2 * T * T * emb * 3 // 2   # causal: QK^T and PV over (T x T), forward+backward
    return 6 * params * batch * T + attention * batch


def matmul_ceiling(n=1024, repeats=7):
    """Median flops/s of a float32 (n x n) @ (n x n) NumPy product: what BLAS gives on this machine."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times)


def timed_steps(step, n):
    """One untimed step, then the wall time of each of ``n`` more."""
    step()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def make_ours(shape, seed=0, return_model=False):
    import gpt
    import tinytensor as tt
    from tinytensor import optim
    vocab, context, emb, layers, heads, batch, T = shape
    tt.tune_heap()                              # freed memory reused, as `python -m gpt train` asks for
    tt.manual_seed(seed)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=vocab, context_length=context, emb_dim=emb, n_layers=layers,
                                  n_heads=heads, drop_rate=0.0, qkv_bias=True))
    opt = optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, (batch, T))
    y = rng.integers(0, vocab, (batch, T))
    step = training_step(model, opt, x, y)
    return (step, model) if return_model else step


def training_step(model, opt, x, y):
    """A function running one full training step of ``model`` on the batch (x, y): forward, cross-entropy,
    backward, ``opt``'s update; it returns the loss."""
    import tinytensor.functional as F

    def step():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.item()
    return step


def make_torch(shape, seed=0, weights=None):
    """PyTorch's step; with ``weights`` (our state_dict) both models start from identical parameters."""
    import torch
    from torch_gpt import TorchGPT, names_from_ours
    vocab, context, emb, layers, heads, batch, T = shape
    torch.manual_seed(seed)
    model = TorchGPT(vocab, context, emb, layers, heads)
    if weights is not None:
        model.load_state_dict({k: torch.tensor(weights[v]) for k, v in names_from_ours(layers).items()})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    rng = np.random.default_rng(seed)          # the same batch as ours
    x = torch.from_numpy(rng.integers(0, vocab, (batch, T)))
    y = torch.from_numpy(rng.integers(0, vocab, (batch, T)))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x).view(-1, vocab), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()
    return step


def torch_available():
    try:
        import torch
        torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", len(os.sched_getaffinity(0)))))
        return True
    except ImportError:
        return False


def peak_memory_mb(framework, name):
    """Peak resident memory (MB) of 3 steps in a fresh process, above the process right after its imports.

    The kernel's high-water mark is reset after the imports (writing 5 to /proc/self/clear_refs), so the
    figure holds the model, optimizer state, activations and gradients, not the libraries.
    """
    code = (f"import sys; sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parents[1])]!r}\n"
            f"import train_bench as b, gpt, tinytensor\n"
            f"{'b.torch_available(); import torch_gpt' if framework == 'torch' else 'pass'}\n"
            f"def status(key):\n"
            f"    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))\n"
            f"open('/proc/self/clear_refs', 'w').write('5')\n"
            f"base = status('VmRSS:')\n"
            f"step = b.make_{framework}(b.SHAPES[{name!r}])\n"
            f"for _ in range(3): step()\n"
            f"print((status('VmHWM:') - base) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def profile_ours(shape, steps=3):
    """Wall-clock seconds per step spent in each op's forward and in its backward, threads included.

    tinytensor calls a hook as each op's result is made and after each op's backward: an op's forward
    time is the time since the previous op's result, its backward time the time since the previous
    backward finished (so the engine's own bookkeeping is counted with the op it serves). What no hook
    sees (the optimizer step, zero_grad) is reported as one line. With the hooks on, the engine hands
    them whole arrays where it would add a slice in place, so getitem's backward reads a little high.
    """
    import importlib
    engine = importlib.import_module("tinytensor.tensor")    # the module (tinytensor.tensor is also a function)
    step = make_ours(shape)
    step()
    rows, last = {}, [0.0]

    def lap(key):
        now = time.perf_counter()
        rows[key] = rows.get(key, 0.0) + now - last[0]
        last[0] = now

    def on_result(out, op, parents):
        lap((op, "forward"))

    def on_backward(node, grad_out, input_grads):
        lap((node._op, "backward"))
    engine._hooks.append(on_result)
    engine._backward_hooks.append(on_backward)
    total = 0.0
    try:
        for _ in range(steps):
            start = last[0] = time.perf_counter()
            step()
            total += time.perf_counter() - start
    finally:
        engine._hooks.remove(on_result)
        engine._backward_hooks.remove(on_backward)
    rows[("optimizer step, zero_grad", "")] = total - sum(rows.values())
    return sorted(((key, seconds / steps) for key, seconds in rows.items()), key=lambda kv: -kv[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="tiny,small,gpt2", help="comma-separated: tiny, small, gpt2")
    parser.add_argument("--steps", type=int, default=7, help="timed steps per framework (after 1 warm-up)")
    parser.add_argument("--profile", action="store_true", help="print a per-op profile of our step")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--block", type=int, default=3,
                        help="timed steps per turn: the frameworks take turns, one untimed step and then "
                             "this many timed ones each")
    args = parser.parse_args()
    have_torch = torch_available()
    ceiling = matmul_ceiling()
    threads = os.environ.get("OPENBLAS_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    import tinytensor
    tinytensor.set_num_threads(int(threads))    # the same number of threads as torch gets
    tinytensor.tune_heap()                      # for the whole process, both frameworks, from the start
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} threads each, "
          f"numpy {np.__version__}" + (f", torch {__import__('torch').__version__}" if have_torch else ", no torch"))
    print(f"float32 matmul ceiling: {ceiling / 1e9:.1f} GFLOP/s")
    results = {}
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        tokens = shape[5] * shape[6]
        flops = step_flops(*shape)
        ours, model = make_ours(shape, return_model=True)
        theirs = make_torch(shape, weights=model.state_dict()) if have_torch else None
        first = ours()
        if theirs:
            # same weights, same batch: the first losses must agree, or the comparison is meaningless
            their_first = theirs()
            print(f"{name:6s} first-step loss: ours {first:.5f}, torch {their_first:.5f}")
            if abs(first - their_first) > 1e-3 * abs(their_first):
                raise SystemExit(f"{name}: the two models disagree; fix that before timing them")
        t_ours, t_theirs = [], []
        while len(t_ours) < args.steps:
            # blocks of steps, alternating between the frameworks; the first step of each block is not
            # timed: it absorbs the other framework's thread pool spinning down and its cold caches
            block = min(args.block, args.steps - len(t_ours))
            t_ours += timed_steps(ours, block)
            if theirs:
                t_theirs += timed_steps(theirs, block)
        row = {"tokens_per_s": tokens / statistics.median(t_ours),
               "ceiling_fraction": flops / statistics.median(t_ours) / ceiling}
        line = (f"{name:6s} ours {row['tokens_per_s']:9.0f} tok/s ({row['ceiling_fraction']:.0%} of matmul ceiling)")
        if theirs:
            row["torch_tokens_per_s"] = tokens / statistics.median(t_theirs)
            row["ratio"] = row["tokens_per_s"] / row["torch_tokens_per_s"]
            row["torch_ceiling_fraction"] = flops / statistics.median(t_theirs) / ceiling
            line += (f" | torch {row['torch_tokens_per_s']:9.0f} tok/s ({row['torch_ceiling_fraction']:.0%})"
                     f" | ratio {row['ratio']:.2f}x")
        print(line, flush=True)
        del ours, theirs, model
        if not args.no_memory:
            row["peak_mb"] = peak_memory_mb("ours", name)
            mem = f"       peak memory: ours {row['peak_mb']:.0f} MB"
            if have_torch:
                row["torch_peak_mb"] = peak_memory_mb("torch", name)
                row["memory_ratio"] = row["peak_mb"] / row["torch_peak_mb"]
                mem += f", torch {row['torch_peak_mb']:.0f} MB, ratio {row['memory_ratio']:.2f}x"
            print(mem, flush=True)
        if args.profile:
            print(f"       per-op profile of our step ({name}), wall time per step:")
            for (op, phase), seconds in profile_ours(shape)[:15]:
                print(f"         {op:40s} {phase:9s} {seconds * 1000:8.1f} ms")
        results[name] = row
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
