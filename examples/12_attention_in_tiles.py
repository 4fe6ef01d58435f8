"""12 - Attention without the (T, T) matrix: the online softmax, one tile of keys at a time.

F.scaled_dot_product_attention (example 07) writes every score: for GPT-2 small at batch 8 x 1024 tokens
that is 8 x 12 x 1024 x 1024 numbers, 384 MiB of float32 per layer, written, read back by the softmax,
and kept for the backward. Fused GPU kernels ("flash attention") never hold it: they walk the keys in tiles and keep,
for each query row, only three running things:

    m    the largest score seen so far
    l    the sum of exp(score - m) so far
    acc  the sum of exp(score - m) * v so far      (a D-vector)

When a new tile brings a larger score, m grows and the old l and acc are scaled down by exp(m_old - m_new),
so they read as if m had been the max all along. After the last tile, output = acc / l, the same softmax
average as before, and m + log(l) (the log-sum-exp) is all the backward needs to rebuild any tile of the
weights exactly. With a causal mask, tiles wholly above the diagonal are skipped.

What to look at:
  1. One row, tile by tile: m, l and the output estimate, ending on the full softmax's answer.
  2. Tiled attention (forward and backward, NumPy, no (T, T) array anywhere) against the fused op.
  3. What the tiles saved: scores never held, and the share of tiles the causal mask let us skip.

Run:  python examples/12_attention_in_tiles.py
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402
import tinytensor.functional as F  # noqa: E402


def key_tiles(row_lo, row_hi, S, offset, tile):
    """(lo, hi) ranges of keys, skipping tiles that every query row_lo..row_hi-1 must not see (causal)."""
    last_visible = row_hi - 1 + offset                  # query i sees keys 0 .. i + offset
    return [(lo, min(S, lo + tile)) for lo in range(0, min(S, last_visible + 1), tile)]


def tile_scores(q_rows, k_tile, rows, cols, offset, scale):
    """Scores of a (query tile, key tile) pair, -inf where a query would look into its future."""
    s = (q_rows @ k_tile.T) * scale
    s[cols[None, :] > rows[:, None] + offset] = -np.inf
    return s


def attention_forward(q, k, v, tile):
    """One (batch, head): q (T, D), k and v (S, D) -> output (T, D) and log-sum-exp per row (T,)."""
    T, D = q.shape
    S = k.shape[0]
    offset, scale = S - T, 1.0 / math.sqrt(D)
    out, lse = np.empty_like(q), np.empty(T)
    for r0 in range(0, T, tile):
        r1 = min(T, r0 + tile)
        rows = np.arange(r0, r1)
        m = np.full(r1 - r0, -np.inf)
        l = np.zeros(r1 - r0)
        acc = np.zeros((r1 - r0, D))
        for c0, c1 in key_tiles(r0, r1, S, offset, tile):
            s = tile_scores(q[r0:r1], k[c0:c1], rows, np.arange(c0, c1), offset, scale)
            m_new = np.maximum(m, s.max(axis=1))
            p = np.exp(s - m_new[:, None])              # this tile's weights, relative to the new max
            shrink = np.exp(m - m_new)                  # rescales what was summed under the old max
            l = shrink * l + p.sum(axis=1)
            acc = shrink[:, None] * acc + p @ v[c0:c1]
            m = m_new
        out[r0:r1] = acc / l[:, None]
        lse[r0:r1] = m + np.log(l)
    return out, lse


def attention_backward(q, k, v, out, lse, g, tile):
    """Gradients of sum(out * g) for q, k, v, rebuilding each tile's weights from the log-sum-exp."""
    T, D = q.shape
    S = k.shape[0]
    offset, scale = S - T, 1.0 / math.sqrt(D)
    gq, gk, gv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    g_dot_out = (g * out).sum(axis=1)                   # sum_j p_ij (g_i . v_j), the softmax's correction
    for r0 in range(0, T, tile):
        r1 = min(T, r0 + tile)
        rows = np.arange(r0, r1)
        for c0, c1 in key_tiles(r0, r1, S, offset, tile):
            s = tile_scores(q[r0:r1], k[c0:c1], rows, np.arange(c0, c1), offset, scale)
            p = np.exp(s - lse[r0:r1, None])            # exactly the forward's weights for this tile
            gv[c0:c1] += p.T @ g[r0:r1]
            dp = g[r0:r1] @ v[c0:c1].T
            ds = p * (dp - g_dot_out[r0:r1, None])      # through the softmax
            gq[r0:r1] += (ds @ k[c0:c1]) * scale
            gk[c0:c1] += (ds.T @ q[r0:r1]) * scale
    return gq, gk, gv


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
    parser.add_argument("--quick", action="store_true", help="a shorter sequence")
    parser.add_argument("--tile", type=int, default=16, help="queries and keys per tile (default 16)")
    args = parser.parse_args()
    if args.tile < 1:
        parser.error("--tile must be a positive integer")
    rng = np.random.default_rng(0)
    one_row_walkthrough(rng, 4)

    B, H, T, D = 2, 3, (48 if args.quick else 200), 8
    print(f"\n=== 2. tiled vs fused, (B, H, T, D) = {(B, H, T, D)}, tiles of {args.tile}, float64 ===")
    q, k, v = (tt.tensor(rng.standard_normal((B, H, T, D)), dtype="float64", requires_grad=True) for _ in range(3))
    fused = F.scaled_dot_product_attention(q, k, v, causal=True)
    g = rng.standard_normal(fused.shape)
    fused.backward(g)
    worst = {"output": 0.0, "dq": 0.0, "dk": 0.0, "dv": 0.0}
    for b in range(B):
        for h in range(H):
            qa, ka, va = (t.data[b, h] for t in (q, k, v))
            out, lse = attention_forward(qa, ka, va, args.tile)
            grads = attention_backward(qa, ka, va, out, lse, g[b, h], args.tile)
            worst["output"] = max(worst["output"], np.abs(out - fused.data[b, h]).max())
            for name, mine, t in zip(("dq", "dk", "dv"), grads, (q, k, v)):
                worst[name] = max(worst[name], np.abs(mine - t.grad[b, h]).max())
    print("max |difference| from the fused op: " + ", ".join(f"{n} {e:.1e}" for n, e in worst.items()))
    print("tiled forward and backward equal the fused op:", all(e < 1e-12 for e in worst.values()))

    print("\n=== 3. what the tiles saved ===")
    n_tiles = -(-T // args.tile)
    visited = sum(len(key_tiles(r0, min(T, r0 + args.tile), T, 0, args.tile)) for r0 in range(0, T, args.tile))
    print(f"score tiles computed: {visited} of {n_tiles * n_tiles} ({visited / n_tiles ** 2:.0%}); the rest lie "
          "wholly in the future")
    print(f"largest score array held at once: {args.tile} x {args.tile} per (batch, head), "
          f"instead of {T} x {T}")
    full = 8 * 12 * 1024 * 1024 * 4
    print(f"for GPT-2 small at batch 8 x 1024 tokens in float32: {full / 2 ** 20:.0f} MiB of scores per layer "
          "that a tiled kernel never writes")


if __name__ == "__main__":
    main()
