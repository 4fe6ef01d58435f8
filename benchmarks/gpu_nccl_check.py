"""GPT-2 small training steps on one GPU through tinytensor.distributed's nccl backend, against the same steps
without it: the losses must agree and the wrapper should cost little. Part of benchmarks/gpu_check.sh.

    python benchmarks/gpu_nccl_check.py                  # one rank (mpiexec -n 1 works too)
    python benchmarks/gpu_nccl_check.py --dry-run        # say whether it could run here, run nothing

Skips (exit 0, one line saying why) where tinytensor.distributed or its nccl backend is missing, or no GPU.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]


def log(*args):
    print(*args, flush=True)


def why_not():
    """None when the check can run here, else the reason it cannot."""
    try:
        import tinytensor.distributed as dist
    except ImportError:
        return "tinytensor.distributed does not exist yet"
    if "nccl" not in (getattr(dist, "__doc__", "") or "") and not hasattr(dist, "nccl"):
        return "tinytensor.distributed says nothing of an nccl backend"
    from tinytensor import backend
    if not backend.cuda_available():
        return "no GPU visible to CuPy"
    return None


def run(steps, shape):
    import gpt
    import tinytensor as tt
    import tinytensor.distributed as dist
    import tinytensor.functional as F
    from tinytensor import backend, nn, optim
    vocab, context, emb, layers, heads, batch, T = shape
    dist.init(backend="nccl")
    cp = backend.cupy_module()
    rng = np.random.default_rng(0)
    x, y = (cp.asarray(rng.integers(0, vocab, (batch, T))) for _ in range(2))
    results = {}
    for label in ("plain", "nccl"):
        tt.manual_seed(0)
        model = gpt.GPT(gpt.GPTConfig(vocab_size=vocab, context_length=context, emb_dim=emb, n_layers=layers,
                                      n_heads=heads, drop_rate=0.0, qkv_bias=True)).to("cuda")
        net = nn.DistributedDataParallel(model) if label == "nccl" else model
        opt = optim.AdamW(model.parameters(), lr=1e-4)
        times, losses = [], []
        for _ in range(steps):
            cp.cuda.Device().synchronize()
            t = time.perf_counter()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            times.append(time.perf_counter() - t)
        results[label] = {"median_s": statistics.median(times[1:]), "losses": losses}
        log(f"{label}: median {results[label]['median_s'] * 1000:.1f} ms/step, losses "
            + " ".join(f"{v:.4f}" for v in losses))
    same = np.allclose(results["plain"]["losses"], results["nccl"]["losses"], rtol=1e-4)
    log(f"losses agree: {same}; nccl / plain time: {results['nccl']['median_s'] / results['plain']['median_s']:.3f}")
    results["losses_agree"] = bool(same)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="steps per run (the first is not timed)")
    parser.add_argument("--dry-run", action="store_true", help="only say whether the check can run here")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    reason = why_not()
    if reason:
        log(f"skipped: {reason}")
        return 0
    if args.dry_run:
        log("would run: GPT-2 small, batch 8 x 1024, plain and through the nccl backend")
        return 0
    results = run(args.steps, (50257, 1024, 768, 12, 12, 8, 1024))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if results["losses_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
