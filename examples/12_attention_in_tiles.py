"""12 - Attention without the (T, T) matrix: the online softmax, one tile of keys at a time.

F.scaled_dot_product_attention in its plain form (example 07) writes every score: for GPT-2 small at batch
8 x 1024 tokens that is 8 x 12 x 1024 x 1024 numbers, 384 MiB of float32 per layer, written, read back by
the softmax, and kept for the backward. Tiled attention ("flash attention") never holds it: it walks the
keys in tiles and keeps, for each query row, only three running things:

    m    the largest score seen so far
    l    the sum of exp(score - m) so far
    acc  the sum of exp(score - m) * v so far      (a D-vector)

When a new tile brings a larger score, m grows and the old l and acc are scaled down by exp(m_old - m_new),
so they read as if m had been the max all along. After the last tile, output = acc / l, the same softmax
average as before, and m + log(l) (the log-sum-exp) is all the backward needs to rebuild any tile of the
weights exactly. With a causal mask, tiles wholly above the diagonal are skipped.

The engine does exactly this for long contexts on the CPU: read tinytensor/schedule/attention_tiles.py beside
this example (``forward_rows`` is the loop of part 1 on a tile of rows, ``backward_rows`` its backward).

What to look at:
  1. One row, tile by tile: m, l and the output estimate, ending on the full softmax's answer.
  2. The engine's tiled path, forward and backward, against its untiled path and the readable twin.
  3. What the tiles saved: the most memory NumPy held during a forward and backward, both paths, and
     the share of tiles the causal mask let the engine skip.

Run:  python examples/12_attention_in_tiles.py
"""
import argparse
import contextlib
import math
import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402
import tinytensor.functional as F  # noqa: E402
from tinytensor import reference  # noqa: E402
from tinytensor.schedule import attention_tiles  # noqa: E402


@contextlib.contextmanager
def engine_tiles(tiled, tile=None):
    """Make the engine take the tiled path (tiles of ``tile`` rows and keys, also when it runs several
    heads side by side) or the untiled one, whatever the length; its usual choice is by size
    (attention_tiles.MIN_SCORES)."""
    names = ("ROWS", "KEYS", "SIDE_ROWS", "SIDE_KEYS", "MIN_SCORES")
    saved = {name: getattr(attention_tiles, name) for name in names}
    attention_tiles.MIN_SCORES = 0 if tiled else math.inf
    if tile:
        for name in names[:4]:
            setattr(attention_tiles, name, tile)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(attention_tiles, name, value)


def values_and_grads(fn, arrays, g, dtype):
    """fn's output and the gradients of sum(output * g) for each input."""
    inputs = [tt.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    out.backward(g.astype(dtype))
    return [out.numpy()] + [x.grad for x in inputs]


def peak_memory_mb(arrays, g):
    """The most memory NumPy held at once during one causal forward and backward, in MiB."""
    inputs = [tt.tensor(a, requires_grad=True) for a in arrays]
    tracemalloc.start()
    try:
        F.scaled_dot_product_attention(*inputs, causal=True).backward(g)
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


def one_row_walkthrough(rng, tile):
    print("=== 1. one query row, its keys in tiles of", tile, "===")
    scores = rng.standard_normal(12) * 2
    values = rng.standard_normal(12)                    # one number per key, to keep the print short
    m, l, acc = -np.inf, 0.0, 0.0
    for lo in range(0, len(scores), tile):
        s, vals = scores[lo:lo + tile], values[lo:lo + tile]
        m_new = max(m, s.max())
        shrink = math.exp(m - m_new)
        l = shrink * l + np.exp(s - m_new).sum()
        acc = shrink * acc + (np.exp(s - m_new) * vals).sum()
        m = m_new
        print(f"keys {lo:2d}..{lo + len(s) - 1:2d}: m = {m:6.3f}  l = {l:7.4f}  output so far = {acc / l:8.5f}")
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    print(f"the full softmax over all 12 keys gives {weights @ values:8.5f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter sequences")
    parser.add_argument("--tile", type=int, default=16, help="query rows and keys per tile in part 2 (default 16)")
    args = parser.parse_args()
    if args.tile < 1:
        parser.error("--tile must be a positive integer")
    rng = np.random.default_rng(0)
    one_row_walkthrough(rng, 4)

    B, H, T, D = 2, 3, (48 if args.quick else 200), 8
    print(f"\n=== 2. the engine in tiles of {args.tile} vs untiled, (B, H, T, D) = {(B, H, T, D)}, float64 ===")
    arrays = [rng.standard_normal((B, H, T, D)) for _ in range(3)]
    g = rng.standard_normal((B, H, T, D))
    with engine_tiles(True, args.tile):
        tiled = values_and_grads(F.scaled_dot_product_attention, arrays, g, np.float64)
    with engine_tiles(False):
        untiled = values_and_grads(F.scaled_dot_product_attention, arrays, g, np.float64)
    twin = values_and_grads(reference.scaled_dot_product_attention, arrays, g, np.float64)
    names = ("output", "dq", "dk", "dv")
    worst = {n: np.abs(a - b).max() for n, a, b in zip(names, tiled, untiled)}
    print("max |tiled - untiled|: " + ", ".join(f"{n} {e:.1e}" for n, e in worst.items()))
    to_twin = (f"{n} {np.abs(a - b).max():.1e}" for n, a, b in zip(names, tiled, twin))
    print("max |tiled - twin|:    " + ", ".join(to_twin))
    print("tiled forward and backward equal the fused op:", all(e < 1e-12 for e in worst.values()))

    T = 1024 if args.quick else 4096
    print(f"\n=== 3. what the tiles saved: one head, T = {T}, D = 16, float32, causal ===")
    arrays = [rng.standard_normal((1, 1, T, 16)).astype(np.float32) for _ in range(3)]
    g = rng.standard_normal((1, 1, T, 16)).astype(np.float32)
    with engine_tiles(False):
        whole = peak_memory_mb(arrays, g)
    with engine_tiles(True):
        tiles = peak_memory_mb(arrays, g)
    print(f"most memory held during forward + backward: untiled {whole:.1f} MiB, tiled {tiles:.2f} MiB "
          f"(one (T, T) float32 array is {T * T * 4 / 2 ** 20:.0f} MiB)")
    made = sum((b - a) * (hi - lo) for r0, r1 in attention_tiles.row_tiles(T)
               for a, b, lo, hi, _ in attention_tiles.key_tiles(r0, r1, T, True, 0, np.float32))
    print(f"scores computed in tiles of {attention_tiles.ROWS} rows x {attention_tiles.KEYS} keys: {made:,} of "
          f"{T * T:,} ({made / T / T:.1%}; {(T * T + T) // 2:,} are visible); the rest lie in the future")


if __name__ == "__main__":
    main()
