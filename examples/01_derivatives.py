"""01 - One derivative, three ways: by hand, by finite differences, by the engine.

The expression:   f(a, b) = tanh(a * b + b**2)        at a = 0.5, b = -1.5

What to look at:
  * The hand-derived column: the chain rule written out, one line per factor (see `by_hand`).
  * The finite-difference column: (f(x + h) - f(x - h)) / 2h. No calculus, only two extra evaluations
    per input. Watch the error table: too large an h is wrong because f curves (error ~ h^2), too
    small an h is wrong because of float round-off (error ~ 1e-16 / h). That is why tt.gradcheck uses
    float64 and h around 1e-6.
  * The engine column: tinytensor recorded each op during the forward pass and ran their backward
    functions in reverse. It matches the hand derivation to float32 precision, and matches it exactly
    in float64.

Run:  python examples/01_derivatives.py
"""
import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402

A, B = 0.5, -1.5


def f(a, b):
    """Plain-Python f, for finite differences."""
    return math.tanh(a * b + b ** 2)


def by_hand(a, b):
    """The chain rule, factor by factor.

    u = a*b + b^2      du/da = b          du/db = a + 2b
    f = tanh(u)        df/du = 1 - tanh(u)^2
    """
    u = a * b + b ** 2
    dfdu = 1 - math.tanh(u) ** 2
    return dfdu * b, dfdu * (a + 2 * b)


def by_finite_differences(a, b, h):
    dfa = (f(a + h, b) - f(a - h, b)) / (2 * h)
    dfb = (f(a, b + h) - f(a, b - h)) / (2 * h)
    return dfa, dfb


def by_engine(a, b, dtype):
    ta = tt.tensor(a, requires_grad=True, dtype=dtype)
    tb = tt.tensor(b, requires_grad=True, dtype=dtype)
    out = (ta * tb + tb ** 2).tanh()
    out.backward()
    return float(ta.grad), float(tb.grad)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same thing (this example is already quick)")
    parser.parse_args()

    print(f"f(a, b) = tanh(a*b + b^2) at a = {A}, b = {B};  f = {f(A, B):.6f}\n")
    hand = by_hand(A, B)
    fd = by_finite_differences(A, B, 1e-6)
    eng32 = by_engine(A, B, "float32")
    eng64 = by_engine(A, B, "float64")
    print(f"{'method':32s} {'df/da':>20s} {'df/db':>20s}")
    for name, (da, db) in [("by hand (chain rule)", hand), ("finite differences, h=1e-6", fd),
                           ("engine, float32", eng32), ("engine, float64", eng64)]:
        print(f"{name:32s} {da:20.12f} {db:20.12f}")

    print("\nLook: the engine in float64 equals the hand derivation:",
          max(abs(e - h) for e, h in zip(eng64, hand)) < 1e-12)
    print("      float32 agrees to about 7 digits:", max(abs(e - h) for e, h in zip(eng32, hand)) < 1e-6)

    print("\nFinite-difference error in df/da against the hand value, as h shrinks:")
    print(f"{'h':>8s} {'error':>10s}")
    for k in range(1, 13):
        h = 10.0 ** -k
        err = abs(by_finite_differences(A, B, h)[0] - hand[0])
        print(f"{h:8.0e} {err:10.1e}")
    print("Look: the error falls like h^2 until about h = 1e-5, then rises again as round-off takes over.")


if __name__ == "__main__":
    main()
