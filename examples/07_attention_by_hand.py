"""07 - Causal self-attention by hand, checked against F.scaled_dot_product_attention.

For each query position i: scores_ij = q_i . k_j / sqrt(D); positions j > i are masked to -inf (the
causal mask: a token may look at itself and the past, never the future); weights = softmax over j;
output_i = sum_j weights_ij v_j.

What to look at:
  1. The causal mask as a grid: 'x' marks the pairs (query i, key j) that are blocked.
  2. The attention weights: every row sums to 1, and everything above the diagonal is exactly 0.
     Row 0 can only look at itself, so its weight is 1.
  3. The by-hand version (transpose, matmul, div, masked_fill, softmax, matmul: each recorded in the
     graph) and the fused op (one op, one hand-written backward) agree on the output and on every
     gradient.
  4. Causality tested directly: change the last token's key and value, and outputs 0..T-2 move by
     float64 round-off at most (about 1e-16), while output T-1 moves by about 100. Their weights on the
     last token are exactly 0; the round-off comes from the fused op's guard against overflow: it
     subtracts each row's max score before exp only when some score could be large, and the huge new
     key makes it take that path (the same math, rounded differently). Changing the value alone
     leaves them exactly unchanged.

Run:  python examples/07_attention_by_hand.py
In a browser: python -m gpt viz runs/tiny (a trained run, or a Hugging Face folder): the model page
shows the attention weights of every layer and head for a prompt you type, and the next-token probabilities.
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402
import tinytensor.functional as F  # noqa: E402

B, H, T, D = 1, 2, 5, 4          # batch, heads, tokens, size of each head


def attention_by_hand(q, k, v):
    """q, k, v: (B, H, T, D) -> (B, H, T, D), from primitive ops, plus the weights for display."""
    T = q.shape[-2]
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1])     # (B, H, T, T)
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)                   # True above the diagonal: the future
    scores = scores.masked_fill(mask, -np.inf)
    weights = F.softmax(scores, axis=-1)                              # each row sums to 1
    return weights @ v, weights, mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same thing (this example is already quick)")
    parser.parse_args()
    rng = np.random.default_rng(0)
    q, k, v = (tt.tensor(rng.standard_normal((B, H, T, D)), dtype="float64", requires_grad=True) for _ in range(3))

    with tt.op_counter() as hand_ops:
        out, weights, mask = attention_by_hand(q, k, v)
    print("=== 1. the causal mask (rows: query i, columns: key j; x = blocked) ===")
    print("     " + " ".join(f"j{j}" for j in range(T)))
    for i in range(T):
        print(f"  i{i} " + " ".join(" x" if mask[i, j] else " ." for j in range(T)))

    print("\n=== 2. attention weights of head 0 ===")
    w = weights.numpy()[0, 0]
    print(np.array2string(w, precision=3, suppress_small=True))
    print("rows sum to 1:", np.allclose(w.sum(axis=1), 1), "| above the diagonal exactly 0:", bool((w[mask] == 0).all()))

    print("\n=== 3. by hand vs the fused op ===")
    with tt.op_counter() as fused_ops:
        fused = F.scaled_dot_product_attention(q, k, v, causal=True)
    print(f"by hand: {hand_ops.total} recorded ops ({', '.join(sorted(hand_ops.counts))}); "
          f"fused: {fused_ops.total} op ({', '.join(fused_ops.counts)})")
    print("max |output difference|:", f"{np.abs(out.numpy() - fused.numpy()).max():.2e}",
          f"(outputs have size {np.abs(out.numpy()).max():.2f})")
    g = rng.standard_normal(out.shape)                    # some upstream gradient dL/d(out)
    out.backward(g)
    hand_grads = [t.grad.copy() for t in (q, k, v)]
    for t in (q, k, v):
        t.zero_grad()
    fused.backward(g)
    for name, t, hg in zip("qkv", (q, k, v), hand_grads):
        print(f"max |d{name} difference|: {np.abs(t.grad - hg).max():.2e}")
    print("Look: differences at float64 round-off (1e-16) or exactly 0: the same math, two code paths.")

    print("\n=== 4. causality: change the last token's key and value ===")
    k2, v2 = k.numpy().copy(), v.numpy().copy()
    k2[:, :, -1], v2[:, :, -1] = 100.0, -100.0
    with tt.no_grad():
        changed = F.scaled_dot_product_attention(q, tt.tensor(k2, dtype="float64"), tt.tensor(v2, dtype="float64"))
        v_only = F.scaled_dot_product_attention(q, k, tt.tensor(v2, dtype="float64"))
    moved = np.abs(changed.numpy() - fused.numpy()).max(axis=(0, 1, 3))
    moved_v = np.abs(v_only.numpy() - fused.numpy()).max(axis=(0, 1, 3))
    print(f"{'change when changing:':21}{'k and v':>9}   {'v alone':>9}")
    for i in range(T):
        print(f"output {i}: max change {moved[i]:9.2e}   {moved_v[i]:9.2e}"
              + ("   <- the only one that may see the last token" if i == T - 1 else ""))
    print("Look: outputs 0..T-2 move by round-off at most (1e-16; exactly 0 when only the value changes): the huge\n"
          "key makes the fused op subtract each row's max before exp (its overflow guard), the same math rounded\n"
          "differently. Their weights on the last token are exactly 0; output T-1 alone sees it.")
    print("\nIn a browser: python -m gpt viz runs/tiny  (the model page: every layer's and head's attention on your prompt)")


if __name__ == "__main__":
    main()
