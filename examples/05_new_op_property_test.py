"""05 - Write a new op, then property-test its gradient with tt.gradcheck and hypothesis.

The op: hypot(a, b) = sqrt(a^2 + b^2), elementwise, with NumPy broadcasting. An op is two functions
side by side, written as a `tt.Function`: `forward` computes the output from arrays, `backward` turns
dL/d(out) into dL/d(each input). `Hypot.apply` runs it on tensors and records both in the graph.

What to look at:
  1. `Hypot` below: the local derivatives as one-line comments. Its backward returns gradients of the
     broadcast shape; the engine sums each back to its input's shape (see 03_broadcasting.py for why).
  2. tt.gradcheck on one example: it compares the backward with central finite differences in float64.
  3. The same check as a property over many hypothesis-drawn shapes and values, including 0-d
     tensors, axes of size 1 and pairs of shapes that broadcast (tinytensor.testing strategies).
  4. A buggy twin that unpacks its saved arrays in the wrong order. It passes when both inputs hold the
     same values, so a hand-picked test could miss it; hypothesis finds a failing case and shrinks it to
     a small one.

Run:  python examples/05_new_op_property_test.py [--quick]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a clone, installed or not
import tinytensor as tt  # noqa: E402

try:                                   # parts 3 and 4 need hypothesis (pip install hypothesis)
    from hypothesis import given, settings
    from tinytensor import testing as ttst
except ImportError:
    given = settings = ttst = None


class Hypot(tt.Function):
    """sqrt(a^2 + b^2), elementwise, broadcasting like NumPy."""

    @staticmethod
    def forward(ctx, a, b):                      # arrays in: NumPy here (CuPy on a GPU, ctx.xp says which)
        out = ctx.xp.sqrt(a * a + b * b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):                        # g = dL/d(out), the broadcast shape
        a, b, out = ctx.saved_tensors
        return g * a / out, g * b / out          # d hypot / da = a / hypot, d hypot / db = b / hypot


class HypotBuggy(Hypot):
    """The same op with a classic bug: the saved arrays unpacked in the wrong order."""

    @staticmethod
    def backward(ctx, g):
        b, a, out = ctx.saved_tensors            # BUG: saved as (a, b, out)
        return g * a / out, g * b / out


hypot, hypot_buggy = Hypot.apply, HypotBuggy.apply


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer hypothesis examples (for CI)")
    args = parser.parse_args()
    n_examples = 25 if args.quick else 200

    print("=== 1. the op on one example ===")
    a = tt.tensor([3.0, 5.0], requires_grad=True)
    b = tt.tensor(4.0, requires_grad=True)
    out = hypot(a, b)
    out.sum().backward()
    print(f"hypot([3, 5], 4) = {out.numpy()}; a.grad = {a.grad} (a / hypot); b.grad = {b.grad} (sum of b / hypot)")

    print("\n=== 2. tt.gradcheck: backward against finite differences, float64 ===")
    a64 = tt.tensor(np.array([[0.5, -1.2, 2.0]]), requires_grad=True, dtype="float64")
    b64 = tt.tensor(np.array([[1.0], [-0.7]]), requires_grad=True, dtype="float64")
    print("shapes (1, 3) and (2, 1):", tt.gradcheck(hypot, a64, b64))

    if given is None:
        print("\nParts 3 and 4 use hypothesis, which the main install leaves out: `pip install hypothesis` "
              "(or pip install -e '.[test]'), then run this again.")
        return
    # a temporary home for hypothesis, removed at the end: no .hypothesis folder is left anywhere
    with tempfile.TemporaryDirectory(prefix="tinytensor-05-hypothesis-") as home:
        try:
            from hypothesis.configuration import set_hypothesis_home_dir
            set_hypothesis_home_dir(home)
        except ImportError:        # an older hypothesis: it may write .hypothesis/ in the current folder
            pass
        properties(n_examples)


def properties(n_examples):
    """Parts 3 and 4: the gradient property over hypothesis-drawn cases, and the buggy twin it catches."""
    # derandomize: the same examples every run; database=None: nothing remembered between runs
    config = settings(max_examples=n_examples, deadline=None, derandomize=True, database=None)
    print(f"\n=== 3. the property, over {n_examples} hypothesis-drawn cases ===")
    seen = []

    @config
    @given(ttst.broadcastable_shapes(2), ttst.data())
    def gradient_matches_finite_differences(shapes, data):
        a = data.draw(ttst.tensors(shapes[0], domain="positive"))   # away from (0, 0), where hypot has a kink
        b = data.draw(ttst.tensors(shapes[1]))
        seen.append(shapes)
        assert tt.gradcheck(hypot, a, b)
        assert hypot(a, b).shape == np.broadcast_shapes(a.shape, b.shape)

    gradient_matches_finite_differences()
    kinds = {"0-d": sum(() in s for s in seen), "size-1 axis": sum(any(1 in t for t in s) for s in seen),
             "different ranks": sum(len(s[0]) != len(s[1]) for s in seen)}
    print(f"passed {len(seen)} cases; among them: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    print("some drawn shape pairs:", seen[:6])

    print("\n=== 4. the buggy twin ===")
    a, b = (tt.tensor(np.full((2, 3), 1.5), requires_grad=True, dtype="float64") for _ in range(2))
    print("equal inputs, hand-picked test passes:", tt.gradcheck(hypot_buggy, a, b))

    @config
    @given(ttst.broadcastable_shapes(2), ttst.data())
    def buggy_gradient_matches(shapes, data):
        a = data.draw(ttst.tensors(shapes[0], domain="positive"))
        b = data.draw(ttst.tensors(shapes[1]))
        assert tt.gradcheck(hypot_buggy, a, b)

    try:
        buggy_gradient_matches()
        print("hypothesis found nothing (unexpected)")
    except Exception as exc:                       # what a failing test would report
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"hypothesis found a failure: {type(exc).__name__}: {first}")
        for note in getattr(exc, "__notes__", []):
            print("  " + note.replace("\n", "\n  "))
    print("\nLook: the shrunk example is tiny, two small inputs whose values differ: the smallest case that")
    print("shows the bug. Put such a test in tests/ and it guards the op from then on.")


if __name__ == "__main__":
    main()
