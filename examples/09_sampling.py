"""09 - Sampling strategies compared on one prompt: greedy, temperature, top-k, top-p.

A language model gives a probability for every possible next token. Generation must pick one, again
and again. How it picks changes the text more than you might expect.

What to look at:
  1. The next-token distribution for the prompt, reshaped by each strategy: temperature < 1 sharpens
     it, > 1 flattens it; top-k keeps only the k most likely tokens; top-p keeps the fewest tokens
     whose probabilities add up to p. The "kept" column counts the tokens that can still be drawn.
  2. That gpt.sample_next really draws from that distribution: its frequencies over many draws match
     the computed probabilities.
  3. One continuation per strategy, same prompt, same seed: greedy repeats itself (it always takes the
     top token, so it falls into loops); high temperature turns into noise; top-k / top-p sit between.
  4. Repetition and variety over a few seeds: distinct tokens and repeated 3-grams per strategy.

It starts from the shared base model of examples/_tiny_base.py (trained once by gpt.train, the full
run of `python -m gpt train`, under a minute, then cached), or from --checkpoint DIR.

Run:  python examples/09_sampling.py [--quick] [--checkpoint DIR]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import bpe  # noqa: E402
import gpt  # noqa: E402
import tinytensor as tt  # noqa: E402
from _tiny_base import base_checkpoint  # noqa: E402  (examples/_tiny_base.py)
PROMPT = "The value of"
STRATEGIES = [                         # (name, temperature, top_k, top_p)
    ("greedy", 0.0, None, None),
    ("temperature 0.7", 0.7, None, None),
    ("temperature 1.0", 1.0, None, None),
    ("temperature 1.5", 1.5, None, None),
    ("top-k 10", 1.0, 10, None),
    ("top-p 0.9", 1.0, None, 0.9),
]


def reshaped(logits, temperature, top_k, top_p):
    """The distribution a strategy draws from (the same steps as gpt.generate's sample_next)."""
    if temperature == 0:
        p = np.zeros_like(logits)
        p[logits.argmax()] = 1.0
        return p
    z = logits / temperature
    if top_k is not None:
        z = np.where(z < np.sort(z)[-top_k], -np.inf, z)          # drop all but the k largest
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p is not None:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]                     # mass ranked above each token
        keep = np.zeros_like(p, dtype=bool)
        keep[order[before < top_p]] = True                          # the fewest tokens reaching top_p
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    return p


def repeated_trigrams(ids):
    grams = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]
    return len(grams) - len(set(grams))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter texts, fewer seeds (for CI)")
    parser.add_argument("--checkpoint", type=Path, help="start from this checkpoint folder (default: the shared "
                                                            "base model, see examples/_tiny_base.py)")
    args = parser.parse_args()
    n_new, seeds = (16, 2) if args.quick else (60, 5)

    with tempfile.TemporaryDirectory(prefix="tinytensor-09-") as scratch:     # used by --quick only
        folder = base_checkpoint(args.checkpoint, quick=args.quick, scratch=scratch)
        model, _ = gpt.load_checkpoint(str(folder))
        tok = bpe.Tokenizer.load(str(folder / "tokenizer.bpe"))
    print()
    prompt = tok.encode(PROMPT)
    with tt.no_grad():
        model.eval()
        logits = model(np.array([prompt])).numpy()[0, -1].astype(np.float64)

    print(f"=== 1. the next-token distribution after {PROMPT!r}, reshaped ===")
    base = reshaped(logits, 1.0, None, None)
    top = np.argsort(-base)[:6]
    head = " ".join(f"{tok.decode([int(i)])!r:>8}" for i in top)
    print(f"{'strategy':16s} {'kept':>5s}  {head}")
    for name, temperature, top_k, top_p in STRATEGIES:
        p = reshaped(logits, temperature, top_k, top_p)
        print(f"{name:16s} {int((p > 0).sum()):5d}  " + " ".join(f"{p[i]:8.3f}" for i in top))

    print("\n=== 2. gpt.sample_next draws from exactly that distribution ===")
    rng = np.random.default_rng(0)
    n = 2000 if args.quick else 20000
    draws = gpt.sample_next(np.repeat(logits[None], n, axis=0), temperature=1.0, top_k=10, rng=rng)
    freq = np.bincount(draws, minlength=len(logits)) / n
    expected = reshaped(logits, 1.0, 10, None)
    print(f"top-k 10, {n} draws: largest |frequency - probability| = {np.abs(freq - expected).max():.3f}"
          f"; tokens outside the top 10 drawn: {int((freq[expected == 0] > 0).sum())}")

    print(f"\n=== 3. one continuation each, {n_new} new tokens, seed 0 ===")
    for name, temperature, top_k, top_p in STRATEGIES:
        out = gpt.generate(model, [prompt], max_new_tokens=n_new, temperature=temperature, top_k=top_k,
                           top_p=top_p, seed=0)
        print(f"{name:16s} {tok.decode(out[0].tolist())!r}")

    print(f"\n=== 4. variety over {seeds} seeds (distinct tokens / repeated 3-grams per text, averaged) ===")
    table = {}
    for name, temperature, top_k, top_p in STRATEGIES:
        distinct, repeats = [], []
        for seed in range(seeds):
            new = gpt.generate(model, [prompt], max_new_tokens=n_new, temperature=temperature, top_k=top_k,
                               top_p=top_p, seed=seed)[0, len(prompt):].tolist()
            distinct.append(len(set(new)))
            repeats.append(repeated_trigrams(new))
        table[name] = (np.mean(distinct), np.mean(repeats))
        print(f"{name:16s} distinct {table[name][0]:5.1f} of {n_new}   repeated 3-grams {table[name][1]:5.1f}")
    print(f"\nfewest distinct tokens: {min(table, key=lambda k: table[k][0])}; "
          f"most repeated 3-grams: {max(table, key=lambda k: table[k][1])}; "
          f"most distinct tokens: {max(table, key=lambda k: table[k][0])}")
    print("Look: greedy loops because the same context always gives the same top token; sampling breaks"
          " the loops, and the hotter the temperature the more it drifts into noise.")


if __name__ == "__main__":
    main()
