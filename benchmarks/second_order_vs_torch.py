"""Second derivatives of the GPT's ops against PyTorch's: Hessian-vector products, float64, one table.

    /tmp/bench/bin/python benchmarks/second_order_vs_torch.py          # a venv with torch (CPU build)

For each op f and fixed random r (a weighting of the output) and v (a direction), both engines compute
H v, the Hessian of L(x) = sum(f(x) * r) times v, by double backward: tinytensor with
``tt.grad(..., create_graph=True)`` (each fused op differentiated again through its composed twin),
PyTorch with ``torch.autograd.grad(..., create_graph=True)``. The table shows the largest difference of
the two, against the largest entry. PyTorch is a benchmark-side dependency only, never the product's.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tinytensor as tt  # noqa: E402
import tinytensor.functional as F  # noqa: E402


def cases(torch):
    """name -> (tinytensor fn, torch fn, input shapes); every input is differentiated."""
    TF = torch.nn.functional
    targets = np.array([1, 0, 3, 2, 4, 1])
    return {
        "softmax": (lambda x: F.softmax(x), lambda x: TF.softmax(x, -1), [(6, 7)]),
        "log_softmax": (lambda x: F.log_softmax(x), lambda x: TF.log_softmax(x, -1), [(6, 7)]),
        "layer_norm (x, w, b)": (lambda x, w, b: F.layer_norm(x, w, b),
                                 lambda x, w, b: TF.layer_norm(x, (7,), w, b, eps=1e-5), [(6, 7), (7,), (7,)]),
        "gelu (tanh)": (F.gelu, lambda x: TF.gelu(x, approximate="tanh"), [(6, 7)]),
        "cross_entropy": (lambda x: F.cross_entropy(x, targets),
                          lambda x: TF.cross_entropy(x, torch.from_numpy(targets)), [(6, 7)]),
        "attention (causal)": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True),
                               lambda q, k, v: torch_attention(torch, q, k, v),
                               [(1, 2, 5, 4)] * 3),
        "linear (x, W, b)": (F.linear, TF.linear, [(6, 7), (5, 7), (5,)]),
        "rms_norm (x, w)": (lambda x, w: F.rms_norm(x, w), lambda x, w: TF.rms_norm(x, (7,), w, eps=1e-6),
                            [(6, 7), (7,)]),
        "silu": (F.silu, TF.silu, [(6, 7)]),
    }


def torch_attention(torch, q, k, v):
    """Causal attention in torch ops (its fused CPU kernel has no double backward): softmax(q k^T / sqrt(D)) v."""
    T, D = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) / D ** 0.5
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, -1) @ v


def hvp_ours(fn, xs, r, vs):
    xs = [tt.tensor(x, requires_grad=True, dtype="float64") for x in xs]
    out = fn(*xs)
    grads = tt.grad(out, xs, tt.tensor(r.reshape(out.shape), dtype="float64"), create_graph=True)
    dot = sum((g * tt.tensor(v, dtype="float64")).sum() for g, v in zip(grads, vs))
    return [np.zeros(x.shape) if h is None else h.numpy() for h, x in zip(tt.grad(dot, xs, allow_unused=True), xs)]


def hvp_torch(torch, fn, xs, r, vs):
    xs = [torch.tensor(x, requires_grad=True) for x in xs]
    out = fn(*xs)
    grads = torch.autograd.grad(out, xs, torch.tensor(r.reshape(out.shape)), create_graph=True)
    dot = sum((g * torch.tensor(v)).sum() for g, v in zip(grads, vs))
    hs = torch.autograd.grad(dot, xs, allow_unused=True)
    return [np.zeros(x.shape) if h is None else h.detach().numpy() for h, x in zip(hs, xs)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs, r and v (default: 0)")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        raise SystemExit("error: this comparison needs PyTorch (pip install torch in a separate venv)") from None
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(args.seed)
    print(f"torch {torch.__version__}, numpy {np.__version__}; H v of sum(f(x) * r), float64")
    print(f"{'op':24s} {'max |H v|':>12s} {'max |ours - torch|':>20s} {'relative':>10s}")
    worst = 0.0
    for name, (ours, theirs, shapes) in cases(torch).items():
        xs = [rng.standard_normal(s) for s in shapes]
        with tt.no_grad():
            out_shape = ours(*[tt.tensor(x, dtype="float64") for x in xs]).shape
        r = rng.standard_normal(out_shape)
        vs = [rng.standard_normal(s) for s in shapes]
        a, b = hvp_ours(ours, xs, r, vs), hvp_torch(torch, theirs, xs, r, vs)
        scale = max(np.abs(x).max() for x in b)
        diff = max(np.abs(x - y).max() for x, y in zip(a, b))
        worst = max(worst, diff / scale)
        print(f"{name:24s} {scale:12.4g} {diff:20.3g} {diff / scale:10.2g}")
    print(f"largest relative difference: {worst:.2g}")


if __name__ == "__main__":
    main()
