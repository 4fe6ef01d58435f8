"""GPT training steps on a GPU: tinytensor on CuPy against PyTorch eager, fp32, TF32 and bf16, in one run.

    python benchmarks/gpu_bench.py                                  # GPT-2 small, batch 8 x 1024, on "cuda"
    python benchmarks/gpu_bench.py --modes fp32,tf32,bf16 --new-kernels flash_attention
    python benchmarks/gpu_bench.py --device cpu --shape tiny --steps 2   # a smoke test of the harness

Modes: fp32; tf32 (``tt.set_tf32(True)``, PyTorch's allow_tf32); bf16 (``tt.autocast(dtype="bfloat16")``
against ``torch.autocast("cuda", torch.bfloat16)``, whose F.scaled_dot_product_attention picks its fused
bf16 kernels; TF32 on in both for what stays float32); fp16 (the same with float16 and a GradScaler on
both sides; on the CPU the only 16-bit mode ours has). ``--new-kernels`` times ours a second time in
each mode with those untested kernels switched on (config.UNTESTED_CUDA_KERNELS), labelled "ours+new".

A step is what benchmarks/train_bench.py times: forward, cross-entropy, backward, AdamW, zero_grad. Each
(framework, precision) runs warm-up steps (CuPy compiles its kernels then), then ``--steps`` timed steps,
each bracketed by a device synchronisation; the median gives tokens/s. The frameworks run one after the other
(not interleaved) so that only one model holds GPU memory at a time. Results go to stdout and, as JSON, to
``--json`` or ``$OUT/gpu_bench.json`` when $OUT is set.
"""
import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

SHAPES = {  # name: (vocab, context, emb, layers, heads, batch, tokens per row)
    "tiny": (512, 128, 128, 4, 4, 8, 128),
    "small": (8192, 256, 384, 6, 6, 8, 256),
    "gpt2": (50257, 1024, 768, 12, 12, 8, 1024),
}


def log(*args):
    print(*args, flush=True)


def step_flops(vocab, context, emb, layers, heads, batch, T):
    """About 6 flops per weight per token, plus attention's QK^T and PV (forward and backward, causal half)."""
    params = layers * 12 * emb * emb + vocab * emb
    attention = layers * 2 * 2 * T * T * emb * 3 // 2
    return 6 * params * batch * T + attention * batch


# ----- ours -----

PRECISION = {"fp32": (False, None), "tf32": (True, None), "bf16": (True, "bfloat16"), "fp16": (True, "float16")}


def make_ours(shape, device, mode, seed=0):
    import gpt
    import tinytensor as tt
    import tinytensor.functional as F
    from tinytensor import backend, optim
    vocab, context, emb, layers, heads, batch, T = shape
    tf32, low = PRECISION[mode]
    tt.set_tf32(tf32)
    if device == "cuda":
        backend.cupy_module()
        tt.set_tf32(tf32)                          # again, now that CuPy is imported
        try:
            from cupy._core import _routines_linalg as linalg
            log(f"  cupy float32 matmul compute type: {linalg.compute_type_to_str(linalg.get_compute_type(np.float32))}")
        except (ImportError, AttributeError) as exc:
            log(f"  (cannot read CuPy's compute type: {exc})")
    tt.manual_seed(seed)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=vocab, context_length=context, emb_dim=emb, n_layers=layers,
                                  n_heads=heads, drop_rate=0.0, qkv_bias=True)).to(device)
    opt = optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    xp = backend.xp_for(device)
    rng = np.random.default_rng(seed)
    x = xp.asarray(rng.integers(0, vocab, (batch, T)))
    y = xp.asarray(rng.integers(0, vocab, (batch, T)))
    sync = (lambda: xp.cuda.Device().synchronize()) if xp is not np else (lambda: None)

    scaler = tt.GradScaler(enabled=low == "float16")

    def step():
        with tt.autocast(dtype=low or "float16", enabled=low is not None):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        return loss

    def free():
        if xp is not np:
            xp.get_default_memory_pool().free_all_blocks()
    return step, sync, free, (lambda loss: loss.item())


# ----- PyTorch eager -----

def make_torch(shape, device, mode, seed=0):
    import torch
    from torch_gpt import TorchGPT

    class DeviceGPT(TorchGPT):
        """benchmarks/torch_gpt.py's model with the positions made on the ids' device."""

        def forward(self, ids):
            x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))

    vocab, context, emb, layers, heads, batch, T = shape
    tf32, low = PRECISION[mode]
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = DeviceGPT(vocab, context, emb, layers, heads).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (batch, T), generator=g).to(dev)
    y = torch.randint(0, vocab, (batch, T), generator=g).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(low)
    scaler = torch.amp.GradScaler(dev.type, enabled=low == "float16")

    def step():
        with torch.autocast(dev.type, dtype=dtype, enabled=low is not None):
            loss = torch.nn.functional.cross_entropy(model(x).view(-1, vocab), y.view(-1))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss

    def free():
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return step, sync, free, (lambda loss: loss.item())


def torch_version(device):
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    return torch.__version__


# ----- timing -----

def time_steps(make, shape, device, mode, steps, warmup, budget_s, label):
    """Median seconds per step (each step synchronised), the losses, and how many steps were timed."""
    t0 = time.perf_counter()
    step, sync, free, value = make(shape, device, mode)
    log(f"  {label}: built in {time.perf_counter() - t0:.1f} s; warming up ({warmup} steps)")
    losses = []
    for i in range(warmup):
        t = time.perf_counter()
        losses.append(value(step()))
        sync()
        log(f"  {label}: warm-up step {i + 1} {time.perf_counter() - t:.2f} s, loss {losses[-1]:.4f}")
    times, started = [], time.perf_counter()
    for i in range(steps):
        sync()
        t = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t)
        losses.append(value(loss))
        if time.perf_counter() - started > budget_s and len(times) >= min(5, steps):
            log(f"  {label}: time budget {budget_s:.0f} s reached after {len(times)} timed steps")
            break
    log(f"  {label}: {len(times)} steps, median {statistics.median(times) * 1000:.1f} ms "
        f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}), last loss {losses[-1]:.4f}")
    del step
    gc.collect()
    free()
    return statistics.median(times), times, losses


def profile_ours(shape, device, steps=2):
    """Seconds per step in each op's forward and backward for our model, the device synchronised at every
    hook so each op is charged its own kernels (the syncs add a little launch latency to every row)."""
    import importlib
    engine = importlib.import_module("tinytensor.tensor")
    step, sync, free, value = make_ours(shape, device, "fp32")
    value(step())
    sync()
    rows, last = {}, [0.0]

    def lap(key):
        sync()
        now = time.perf_counter()
        rows[key] = rows.get(key, 0.0) + now - last[0]
        last[0] = now
    engine._hooks.append(lambda out, op, parents: lap((op, "forward")))
    engine._backward_hooks.append(lambda node, g, grads: lap((node._op, "backward")))
    total = 0.0
    try:
        for _ in range(steps):
            sync()
            start = last[0] = time.perf_counter()
            value(step())
            sync()
            total += time.perf_counter() - start
    finally:
        engine._hooks.clear()
        engine._backward_hooks.clear()
    rows[("optimizer step, zero_grad, loss", "")] = total - sum(rows.values())
    del step
    gc.collect()
    free()
    return total / steps, sorted(((f"{op} {phase}".strip(), t / steps) for (op, phase), t in rows.items()),
                                 key=lambda kv: -kv[1])


def kernel_profile(make, shape, device, mode="fp32", steps=2):
    """GPU time per kernel name over a step, from PyTorch's profiler (CUPTI sees every kernel in the
    process, CuPy's included): (ms per step, launches per step, name), largest first, and the step total."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    if device == "cuda":
        torch.cuda.init()
    activity = ProfilerActivity.CUDA if device == "cuda" else ProfilerActivity.CPU    # CPU: a smoke test
    step, sync, free, value = make(shape, device, mode)
    value(step())
    sync()
    with profile(activities=[activity]) as prof:
        for _ in range(steps):
            value(step())
        sync()
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None) if device == "cuda" else e.cpu_time_total
        t = getattr(e, "cuda_time_total", 0) if t is None else t
        if t > 0:
            rows.append((t / steps / 1000, e.count / steps, e.key))
    del step
    gc.collect()
    free()
    rows.sort(reverse=True)
    return sum(r[0] for r in rows), rows


@contextlib.contextmanager
def kernels_on(names):
    """Ours with the tested fused kernels in use and, of the untested ones, exactly ``names`` switched on
    inside (as TINYTENSOR_CUDA_KERNELS=all,NAMES would)."""
    from tinytensor import config
    saved = set(config.cuda_kernels)
    config.cuda_kernels = (saved - set(config.UNTESTED_CUDA_KERNELS)) | set(names)
    try:
        yield
    finally:
        config.cuda_kernels = saved


def gpu_name(device):
    if device != "cuda":
        return platform.processor() or platform.machine()
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--shape", default="gpt2", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, help="override the shape's batch size")
    parser.add_argument("--tokens", type=int, help="override the shape's tokens per row")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per run (median over them)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (kernel compilation)")
    parser.add_argument("--budget-s", type=float, default=45.0, help="stop a run's timed steps after this long "
                        "(once 5 are done)")
    parser.add_argument("--modes", default="fp32,tf32", help="comma list of fp32, tf32, bf16, fp16")
    parser.add_argument("--new-kernels", default="", help="comma list of untested kernels "
                        "(tinytensor.config.UNTESTED_CUDA_KERNELS, or 'all'): ours runs again in each mode with "
                        "them switched on")
    parser.add_argument("--profile-modes", default="fp32", help="modes the --kernel-profile covers (comma list)")
    parser.add_argument("--frameworks", default="ours,torch", help="comma list of ours, torch")
    parser.add_argument("--compare-kernel", default="", help="also time ours fp32 with this fused kernel off "
                        "(a name from tinytensor.cuda.kernels.NAMES, or 'all')")
    parser.add_argument("--profile", action="store_true", help="print a per-op profile of our fp32 step")
    parser.add_argument("--kernel-profile", action="store_true", help="GPU time per kernel of ours (with the "
                        "new kernels when given) and of PyTorch, in each --profile-modes (needs PyTorch with CUDA)")
    parser.add_argument("--json", help="write results here (default: $OUT/gpu_bench.json when $OUT is set)")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes + args.profile_modes.split(",") if m and m not in PRECISION]
    if bad:
        parser.error(f"unknown mode {bad[0]!r}: use {', '.join(PRECISION)}")
    from tinytensor import config
    new = set(config.UNTESTED_CUDA_KERNELS) if args.new_kernels == "all" else \
        {n.strip() for n in args.new_kernels.split(",") if n.strip()}
    if new - set(config.UNTESTED_CUDA_KERNELS + config.CUDA_KERNEL_NAMES):
        parser.error(f"unknown kernel in --new-kernels: {', '.join(sorted(new - set(config.UNTESTED_CUDA_KERNELS)))}")

    shape = list(SHAPES[args.shape])
    if args.batch:
        shape[5] = args.batch
    if args.tokens:
        shape[6] = args.tokens
    shape = tuple(shape)
    tokens = shape[5] * shape[6]
    import tinytensor
    tv = torch_version(args.device)
    frameworks = [f for f in args.frameworks.split(",") if f]
    if "torch" in frameworks and tv is None:
        log(f"PyTorch not available for device {args.device}: timing ours only")
        frameworks.remove("torch")
    extra = ""
    if args.device == "cuda":
        import cupy
        extra = f", cupy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}"
    device_name = gpu_name(args.device)
    log(f"device: {args.device} ({device_name}); numpy {np.__version__}{extra}"
        + (f", torch {tv}" if tv else ", no torch") + f"; tinytensor {tinytensor.__version__}")
    log(f"shape {args.shape}: vocab {shape[0]}, context {shape[1]}, emb {shape[2]}, layers {shape[3]}, "
        f"heads {shape[4]}; batch {shape[5]} x {shape[6]} tokens = {tokens} tokens/step; "
        f"{step_flops(*shape) / 1e12:.2f} TFLOP/step")
    results = {"device": args.device, "device_name": device_name, "shape": args.shape, "dims": shape,
               "tokens_per_step": tokens, "numpy": np.__version__, "torch": tv, "runs": {}}
    if args.device == "cuda":
        results["cupy"] = cupy.__version__
    results["new_kernels"] = sorted(new)
    makers = {"ours": make_ours, "torch": make_torch}
    variants = [(fw, fw, set()) for fw in frameworks]            # (label, framework, extra kernels on)
    if new and "ours" in frameworks:
        variants.insert(1, ("ours+new", "ours", new))
    for mode in modes:
        for name, fw, extra_kernels in variants:
            label = f"{name:8s} {mode}"
            try:
                with kernels_on(extra_kernels):
                    median, times, losses = time_steps(makers[fw], shape, args.device, mode, args.steps,
                                                       args.warmup, args.budget_s, label)
            except Exception as exc:       # report and go on: one failure must not lose the other figures
                log(f"  {label}: FAILED {type(exc).__name__}: {exc}")
                results["runs"][f"{name}_{mode}"] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            results["runs"][f"{name}_{mode}"] = {
                "median_s": median, "tokens_per_s": tokens / median, "tflops": step_flops(*shape) / median / 1e12,
                "steps_s": times, "losses": losses}
            log(f"{label}: {tokens / median:10.0f} tokens/s  ({step_flops(*shape) / median / 1e12:.1f} TFLOP/s)")
    if args.compare_kernel:
        from tinytensor import config
        saved = set(config.cuda_kernels)
        off = set(config.CUDA_KERNEL_NAMES) if args.compare_kernel == "all" else {args.compare_kernel}
        config.cuda_kernels = saved - off
        label = f"ours fp32 without {args.compare_kernel}"
        try:
            median, times, losses = time_steps(make_ours, shape, args.device, "fp32", args.steps, args.warmup,
                                               args.budget_s, label)
            results["runs"][f"ours_fp32_without_{args.compare_kernel}"] = {
                "median_s": median, "tokens_per_s": tokens / median, "steps_s": times, "losses": losses}
            log(f"{label}: {tokens / median:10.0f} tokens/s")
        except Exception as exc:
            log(f"  {label}: FAILED {type(exc).__name__}: {exc}")
        finally:
            config.cuda_kernels = saved
    if args.profile:
        try:
            total, rows = profile_ours(shape, args.device)
            log(f"per-op profile of our fp32 step (synchronised at every op: {total * 1000:.1f} ms per step):")
            for name, seconds in rows[:25]:
                log(f"  {name:45s} {seconds * 1000:8.2f} ms  {seconds / total:6.1%}")
            results["profile"] = {"step_s": total, "rows": rows}
        except Exception as exc:
            log(f"  profile: FAILED {type(exc).__name__}: {exc}")
    if args.kernel_profile:
        for mode in [m for m in args.profile_modes.split(",") if m]:
            for fw, top in (("ours", 40), ("torch", 20)):
                if fw not in frameworks:
                    continue
                try:
                    with kernels_on(new if fw == "ours" else set()):
                        total, rows = kernel_profile(makers[fw], shape, args.device, mode)
                    shown = fw + ("+new" if fw == "ours" and new else "")
                    log(f"kernels of {shown} {mode} per step (GPU time {total:.1f} ms):")
                    for ms, n, name in rows[:top]:
                        log(f"  {ms:8.2f} ms {n:6.0f}x  {name[:110]}")
                    results[f"kernels_{fw}" + ("" if mode == "fp32" else f"_{mode}")] = {"total_ms": total, "rows": rows}
                except Exception as exc:
                    log(f"  kernel profile of {fw} {mode}: FAILED {type(exc).__name__}: {exc}")
    log("summary:")
    runs = results["runs"]
    for mode in modes:
        theirs = runs.get(f"torch_{mode}", {})
        for name in ("ours", "ours+new"):
            ours = runs.get(f"{name}_{mode}", {})
            if "tokens_per_s" in ours and "tokens_per_s" in theirs:
                ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
                results[f"ratio_{mode}" + ("_new" if name != "ours" else "")] = ratio
                log(f"  {mode}: {name} {ours['tokens_per_s']:.0f} tok/s, torch {theirs['tokens_per_s']:.0f} tok/s, "
                    f"ratio {ratio:.2f}x")
            elif "tokens_per_s" in ours:
                log(f"  {mode}: {name} {ours['tokens_per_s']:.0f} tok/s")
    path = args.json or (os.path.join(os.environ["OUT"], "gpu_bench.json") if os.environ.get("OUT") else None)
    if path:
        Path(path).write_text(json.dumps(results, indent=2))
        log(f"results written to {path}")


if __name__ == "__main__":
    main()
