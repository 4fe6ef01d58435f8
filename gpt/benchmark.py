"""Measure what the KV cache buys: tokens per second of generation with and without it.

    python -m gpt.benchmark                       # tiny preset and a gpt2-small-shaped model
    python -m gpt.benchmark --presets tiny --new-tokens 200

Runs alternate (cache, no cache, cache, ...) so a busy machine slows both alike; medians are reported.
"""
import argparse
import statistics
import time

import numpy as np

import tinytensor as tt

from .models.gpt2_config import GPTConfig
from .generation.generate import generate
from .models.gpt2 import GPT


def measure(cfg, prompt_len=8, new_tokens=100, repeats=3, batch=1):
    """{"cache_s", "no_cache_s", "speedup", "same"}: median seconds of each way and whether outputs agree."""
    tt.manual_seed(0)
    model = GPT(cfg)
    prompt = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, prompt_len))
    times = {True: [], False: []}
    outs = {}
    for _ in range(repeats):
        for use_cache in (True, False):
            t0 = time.perf_counter()
            outs[use_cache] = generate(model, prompt, max_new_tokens=new_tokens, use_cache=use_cache)
            times[use_cache].append(time.perf_counter() - t0)
    c, n = statistics.median(times[True]), statistics.median(times[False])
    return {"cache_s": c, "no_cache_s": n, "speedup": n / c, "same": bool(np.array_equal(outs[True], outs[False]))}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gpt.benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "gpt2-small"])
    p.add_argument("--new-tokens", type=int, default=100)
    p.add_argument("--prompt-len", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    print(f"{'model':<12} {'new tokens':>10} {'cache s':>9} {'no cache s':>11} {'speed-up':>9}  same output")
    for name in a.presets:
        cfg = GPTConfig.preset(name, **({"vocab_size": 1024} if name == "tiny" else {}))
        r = measure(cfg, a.prompt_len, a.new_tokens, a.repeats)
        print(f"{name:<12} {a.new_tokens:>10} {r['cache_s']:>9.2f} {r['no_cache_s']:>11.2f} {r['speedup']:>8.1f}x  {r['same']}")


if __name__ == "__main__":
    main()
