"""03 - Broadcasting shapes the gradient: an input used many times gets the sum of its gradients.

NumPy broadcasting silently copies an input along new leading axes and along axes of size 1. In the
graph each copy is a use of the same number, so backward must add up the gradients of all copies:
the gradient of a broadcast input is the output gradient summed over the broadcast axes, and it
always has the input's own shape.

What to look at:
  1. A bias of shape (4,) added to a batch of shape (3, 4): its gradient is the column sum of the
     output gradient, shape (4,), not (3, 4).
  2. (3, 1) * (1, 4) -> (3, 4): each input is summed over the axis where it was stretched.
  3. The same result with the copies made explicit (np.broadcast_to, then summing by hand), and a
     finite-difference check with tt.gradcheck.
  4. The classic silent bug: a (3,) vector minus a (3, 1) column broadcasts to (3, 3) instead of
     failing. The gradient shapes still come out right, the numbers are not what you meant.

Run:  python examples/03_broadcasting.py
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402


def show(name, t):
    print(f"{name} shape {t.shape}:\n{np.array2string(t, precision=3, suppress_small=True)}")


def bias_example():
    print("=== 1. a bias (4,) added to a batch (3, 4) ===")
    x = tt.tensor(np.arange(12.0).reshape(3, 4))
    b = tt.tensor(np.zeros(4), requires_grad=True)
    y = x + b                                       # b is copied to each of the 3 rows
    g = np.array([[1, 2, 3, 4], [10, 20, 30, 40], [100, 200, 300, 400]], dtype=np.float32)
    y.backward(g)                                   # pretend dL/dy = g
    show("dL/dy (given)", g)
    show("b.grad = dL/dy summed over the batch axis", b.grad)
    print("Look: b.grad has b's shape (4,), and each entry is a column sum of dL/dy:",
          np.array_equal(b.grad, g.sum(axis=0)), "\n")


def two_sided_example():
    print("=== 2. (3, 1) * (1, 4) -> (3, 4): both inputs are stretched ===")
    a = tt.tensor([[1.0], [2.0], [3.0]], requires_grad=True)
    c = tt.tensor([[10.0, 20.0, 30.0, 40.0]], requires_grad=True)
    out = a * c                                     # (3, 4): out[i, j] = a[i] * c[j]
    out.sum().backward()                            # dL/dout = ones((3, 4))
    show("a.grad (each a[i] was used 4 times: sum of c)", a.grad)
    show("c.grad (each c[j] was used 3 times: sum of a)", c.grad)

    print("\n=== 3. the same gradient with the copies made explicit ===")
    a_copies = np.broadcast_to(a.numpy(), (3, 4))   # the 4 copies of each a[i]
    c_copies = np.broadcast_to(c.numpy(), (3, 4))
    grad_of_each_a_copy = np.ones((3, 4)) * c_copies    # d(a*c)/da = c, for every copy
    by_hand = grad_of_each_a_copy.sum(axis=1, keepdims=True)
    print(f"a {a.shape} is copied to {a_copies.shape}: copy (i, j) gets the gradient c[j]; a.grad sums them over axis 1")
    print("a.grad == sum over the copies' gradients:", np.allclose(a.grad, by_hand))
    ok = tt.gradcheck(lambda a, c: a * c, a, c)
    print("tt.gradcheck (finite differences, float64) agrees:", ok, "\n")


def silent_bug():
    print("=== 4. the silent bug: (3,) - (3, 1) is (3, 3) ===")
    v = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    col = tt.tensor([[1.0], [2.0], [3.0]])
    d = v - col
    print(f"v {v.shape} - col {col.shape} -> {d.shape}   (meant: elementwise, shape (3,))")
    (d * d).sum().backward()
    print("v.grad", v.grad, "has v's shape, yet sums 3 rows: check shapes, not only values.")
    fixed = v - col.reshape(3)
    print(f"fix: reshape the column first -> {fixed.shape}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same thing (this example is already quick)")
    parser.parse_args()
    bias_example()
    two_sided_example()
    silent_bug()
    print("Rule: the gradient of a broadcast input is summed over the axes it was stretched along.")


if __name__ == "__main__":
    main()
