"""13 - Newton's method with the second derivative from autograd.

The function:   f(x) = x^4 - 3 x^2 + x        (a double well; Newton looks for a point where f'(x) = 0)

Newton's step:  x <- x - f'(x) / f''(x)       (fit a parabola at x, jump to its bottom)

What to look at:
  * `derivatives`: one backward with create_graph=True leaves x.grad as a Tensor that remembers how it
    was computed (the backward of each op recorded as ops: 4x^3 - 6x + 1 as a graph). A second backward
    through x.grad gives f''(x). This is DeZero's "higher-order derivatives" step, with PyTorch's names.
  * The analytic columns: f'(x) = 4x^3 - 6x + 1 and f''(x) = 12x^2 - 6, written out by hand. The autograd
    columns equal them (float64, to the last digit or so).
  * The step size column: Newton converges quadratically, the number of correct digits doubling each step,
    once it is close. Gradient descent on the same function (last line) has 3 digits after 50 steps.

Run:  python examples/13_newton_second_derivative.py
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402


def f(x):
    return x ** 4 - 3 * x ** 2 + x


def derivatives(x0):
    """(f'(x0), f''(x0)) from autograd: backward twice, the first one recording its own graph."""
    x = tt.tensor(x0, requires_grad=True, dtype="float64")
    f(x).backward(create_graph=True)
    first = x.grad                  # 4x^3 - 6x + 1, a Tensor with a graph back to x
    x.grad = None                   # (backward adds into .grad: start the second derivative from zero)
    first.backward()
    return first.item(), float(x.grad)


def by_hand(x):
    return 4 * x ** 3 - 6 * x + 1, 12 * x ** 2 - 6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same thing (this example is already quick)")
    parser.add_argument("--start", type=float, default=2.0, help="where Newton starts (default: 2.0)")
    args = parser.parse_args()

    x = args.start
    heads = ("step", "x", "f(x)", "autograd f'", "hand f'", "autograd f''", "hand f''", "|step|")
    print(" ".join(h.rjust(w) for h, w in zip(heads, (4, 20, 12, 14, 14, 14, 14, 9))))
    agree = True
    for step in range(8):
        d1, d2 = derivatives(x)
        h1, h2 = by_hand(x)
        agree = agree and abs(d1 - h1) <= 1e-12 * max(1, abs(h1)) and abs(d2 - h2) <= 1e-12 * max(1, abs(h2))
        move = d1 / d2
        print(f"{step:4d} {x:20.15f} {f(x):12.6f} {d1:14.8f} {h1:14.8f} {d2:14.8f} {h2:14.8f} {abs(move):9.1e}")
        x -= move
    print(f"\nLook: the second derivative from autograd equals the analytic one: {agree}")
    print(f"      Newton stops at x = {x:.12f}, where f'(x) = {by_hand(x)[0]:.1e} and f''(x) = {by_hand(x)[1]:.2f} > 0 "
          "(a minimum)")

    y, lr = args.start, 0.01
    for _ in range(50):
        y -= lr * derivatives(y)[0]
    print(f"      gradient descent (lr {lr}) after 50 steps from the same start: x = {y:.6f}")


if __name__ == "__main__":
    main()
