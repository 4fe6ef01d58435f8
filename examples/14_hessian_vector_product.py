"""14 - The Hessian-vector product of a small MLP's loss, without the Hessian.

The model:   logits = linear(gelu(linear(x, W1, b1)), W2, b2)      loss = cross_entropy(logits, y)
All its parameters, flattened, are one vector w (here 2*8 + 8 + 8*3 + 3 = 51 numbers).

H v (the Hessian of the loss times a vector v) is what Newton-type optimizers, curvature estimates and
influence functions need. The Hessian itself has n^2 entries; H v costs about two backward passes:

    g(w) = dL/dw                          backward with create_graph=True: g is a graph of w
    H v  = d/dw <g(w), v>                 one more backward, through that graph (Pearlmutter's trick)

What to look at:
  * `hvp`: those two lines, with tt.grad.
  * The check: H v against a finite difference of gradients, (g(w + eps v) - g(w - eps v)) / (2 eps).
  * The full Hessian, one H e_i per column: symmetric, as a matrix of second derivatives must be.
  * Power iteration with H v alone finds the largest curvature (the "sharpness" of the loss), which caps
    the learning rate plain gradient descent can use: about 2 / that.
  * linear, gelu and cross_entropy are fused ops: under create_graph each is differentiated again through
    its composed twin in tinytensor/reference.py, so their first-order backward stays the fast one.

Run:  python examples/14_hessian_vector_product.py
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402
import tinytensor.functional as F  # noqa: E402

SHAPES = [(8, 2), (8,), (3, 8), (3,)]          # W1, b1, W2, b2


def make_data(rng, n=32):
    """Three noisy clusters in the plane, labelled 0, 1, 2."""
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 1.0], [1.0, -0.5], [-1.0, -0.5]])
    return tt.tensor(centres[y] + 0.3 * rng.standard_normal((n, 2)), dtype="float64"), y


def unflatten(w):
    """The parameter tensors as slices of the one vector w (so every gradient is one vector too)."""
    params, start = [], 0
    for shape in SHAPES:
        size = int(np.prod(shape))
        params.append(w[start:start + size].reshape(shape))
        start += size
    return params


def loss_fn(w, x, y):
    W1, b1, W2, b2 = unflatten(w)
    return F.cross_entropy(F.linear(F.gelu(F.linear(x, W1, b1)), W2, b2), y)


def gradient(w, x, y):
    """dL/dw as plain numbers (a first-order backward, no graph kept)."""
    w = tt.tensor(w, requires_grad=True, dtype="float64")
    return tt.grad(loss_fn(w, x, y), w)[0].numpy()


def hvp(w, v, x, y):
    """H v by double backward: the gradient, kept as a graph, then the gradient of <g, v>."""
    w = tt.tensor(w, requires_grad=True, dtype="float64")
    (g,) = tt.grad(loss_fn(w, x, y), w, create_graph=True)          # g(w), differentiable again
    (Hv,) = tt.grad((g * tt.tensor(v, dtype="float64")).sum(), w)   # d/dw <g(w), v>
    return Hv.numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer power-iteration steps")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x, y = make_data(rng)
    n = sum(int(np.prod(s)) for s in SHAPES)
    w = rng.standard_normal(n) * 0.5
    print(f"an MLP 2 -> 8 (GELU) -> 3 with {n} parameters, cross-entropy on {len(y)} points; "
          f"loss {loss_fn(tt.tensor(w, dtype='float64'), x, y).item():.4f}")

    v = rng.standard_normal(n)
    Hv = hvp(w, v, x, y)
    eps = 1e-5
    fd = (gradient(w + eps * v, x, y) - gradient(w - eps * v, x, y)) / (2 * eps)
    err = np.abs(Hv - fd).max() / np.abs(fd).max()
    print(f"\nH v by double backward, first 5 entries:     {np.array2string(Hv[:5], precision=6)}")
    print(f"H v by differences of gradients (eps {eps}): {np.array2string(fd[:5], precision=6)}")
    print(f"Look: they agree: {err < 1e-6} (largest difference {err:.1e} of the largest entry)")

    H = np.stack([hvp(w, e, x, y) for e in np.eye(n)], axis=1)      # column i: H e_i
    print(f"\nthe full Hessian from {n} products: symmetric: {np.allclose(H, H.T, atol=1e-12)}, "
          f"largest |H_ij - H_ji| {np.abs(H - H.T).max():.1e}")

    u = rng.standard_normal(n)
    for _ in range(10 if args.quick else 40):                        # power iteration: u <- H u / |H u|
        u = hvp(w, u, x, y)
        top = np.linalg.norm(u)
        u /= top
    print(f"largest curvature by power iteration with H v only: {top:.6f}; "
          f"numpy.linalg.eigvalsh on the full H: {np.abs(np.linalg.eigvalsh(H)).max():.6f}")
    print(f"so plain gradient descent is stable here for learning rates below about 2 / {top:.3f} = {2 / top:.2f}")


if __name__ == "__main__":
    main()
