"""Training speed of the three families at one width: tiny GPT-2, tiny Llama 3, tiny Qwen3.

    python benchmarks/families_bench.py                  # the tiny presets, 4 rounds of 5 timed steps each
    python benchmarks/families_bench.py --rounds 2 --steps 3 --json out.json

Each family's full training step (forward, cross-entropy, backward, AdamW) on the same batch shape; the
families take turns, a block of steps each (the first of a block untimed), so a machine whose load
changes slows all of them alike. Reports median tokens/s, each against GPT-2's, and the parameters.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import training_step  # noqa: E402 (the same step as train_bench's)

ARCHS = ("gpt2", "llama", "qwen3")


def make_step(arch, vocab=1024, batch=16, seed=0, **over):
    """A training step of ``arch``'s tiny preset (vocabulary ``vocab``) on one fixed random batch."""
    import tinytensor as tt
    from tinytensor import optim
    from gpt.models import build_model, config_class
    from gpt.training.pretrain import param_groups
    tt.tune_heap()
    tt.manual_seed(seed)
    cfg = config_class(arch).preset("tiny", vocab_size=vocab, **over)
    model = build_model(cfg)
    opt = optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(seed)
    T = cfg.context_length
    x, y = rng.integers(0, vocab, (batch, T)), rng.integers(0, vocab, (batch, T))
    return training_step(model, opt, x, y), model.num_parameters(), batch * T


def run(rounds=4, steps=5, **over):
    """{arch: {"tokens_per_s", "parameters", "vs_gpt2"}} from alternating blocks of steps."""
    made = {arch: make_step(arch, **over) for arch in ARCHS}
    times = {arch: [] for arch in ARCHS}
    for _ in range(rounds):
        for arch, (step, _, _) in made.items():
            step()                                          # untimed: the block's first step
            for _ in range(steps):
                t = time.perf_counter()
                step()
                times[arch].append(time.perf_counter() - t)
    out = {}
    for arch, (_, params, tokens) in made.items():
        out[arch] = {"tokens_per_s": tokens / statistics.median(times[arch]), "parameters": params}
    for arch in ARCHS:
        out[arch]["vs_gpt2"] = out[arch]["tokens_per_s"] / out["gpt2"]["tokens_per_s"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="blocks per family (default: 4)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per block (default: 5)")
    p.add_argument("--batch", type=int, default=16, help="rows per step (default: 16, as the tiny run)")
    p.add_argument("--json", help="also write the results to this file (default: none)")
    a = p.parse_args(argv)
    results = run(a.rounds, a.steps, batch=a.batch)
    print(f"{'family':<7} {'parameters':>11} {'tokens/s':>10} {'vs GPT-2':>9}")
    for arch, r in results.items():
        print(f"{arch:<7} {r['parameters']:>11,} {r['tokens_per_s']:>10,.0f} {r['vs_gpt2']:>8.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
