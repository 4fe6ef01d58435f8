"""Hypothesis strategies for property-testing tinytensor ops, yours included.

The project's own tests use these; they are small on purpose, because ``tt.gradcheck`` runs the op twice
per input element (``tt.gradcheck(fn, x, fast=True)`` runs it twice per random direction instead, so it
takes large shapes too). ``tt.gradgradcheck`` checks second derivatives the same way, and ``tangents``
draws the directions for ``tt.jvp``. Shapes include 0-d tensors and axes of size 1; ``broadcastable_shapes`` gives shapes of
different ranks that broadcast together; ``arrays``/``tensors`` draw values inside an op's domain and,
where the op has a kink, away from it.

Property-testing your own op::

    import numpy as np
    from hypothesis import given
    import tinytensor as tt
    from tinytensor import testing as ttst
    from tinytensor.tensor import Tensor

    def softplus(x):                       # your op: forward and backward side by side
        xp = np
        out = xp.logaddexp(0, x.data)

        def backward(g):                   # d/dx log(1 + e^x) = sigmoid(x)
            return (g / (1 + xp.exp(-x.data)),)
        return Tensor._make(out, (x,), backward, "softplus")

    @given(ttst.tensors(ttst.shapes(max_size=12)))
    def test_softplus_gradient(x):
        assert tt.gradcheck(softplus, x)

    @given(ttst.broadcastable_shapes(2), ttst.data())
    def test_my_binary_op(shapes, data):
        a = data.draw(ttst.tensors(shapes[0]))
        b = data.draw(ttst.tensors(shapes[1], domain="positive"))
        assert tt.gradcheck(lambda a, b: a / b, a, b)

    def softplus_composed(x):              # the same op from tinytensor's ops: differentiable to any order
        return (1 + x.exp()).log()

    @given(ttst.tensors(ttst.shapes(max_size=8)), ttst.data())
    def test_softplus_second_derivative_and_jvp(x, data):
        assert tt.gradgradcheck(softplus_composed, x)
        (v,) = data.draw(ttst.tangents(x))
        out, jv = tt.jvp(softplus_composed, x, v)           # J v: here sigmoid(x) v
        assert np.allclose(jv.numpy(), v.numpy() / (1 + np.exp(-x.numpy())))

All strategies default to float64, which is what ``tt.gradcheck`` works in.
"""
import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .tensor import Tensor

__all__ = ["DOMAINS", "shapes", "broadcastable_shapes", "arrays", "tensors", "ids", "tangents", "data"]

data = st.data     # re-exported so a test needs only this module for ``data.draw(...)``

#: name -> (low, high) of the values drawn for that domain (inclusive bounds).
DOMAINS = {
    "real": (-2.0, 2.0),          # any op defined on all reals
    "positive": (0.1, 3.0),       # log, sqrt, a base of pow, a divisor
    "unit": (-1.0, 1.0),          # the closed interval [-1, 1]
    "probability": (0.05, 0.95),  # strictly inside (0, 1)
    "wide": (-30.0, 30.0),        # saturating ops (sigmoid, tanh, softmax stability)
}


@st.composite
def shapes(draw, min_dims=0, max_dims=4, min_side=1, max_side=4, max_size=24):
    """A shape tuple: ``min_dims..max_dims`` axes, each ``min_side..max_side`` long, with at most
    ``max_size`` elements in all (``None``: no limit).

    The default draws 0-d shapes ``()`` and axes of size 1, the cases where broadcasting and reductions go
    wrong most often. Sides are drawn one by one within what is left of ``max_size``, so nothing is filtered.
    """
    if not 0 <= min_dims <= max_dims:
        raise ValueError(f"shapes: need 0 <= min_dims <= max_dims, got {min_dims}, {max_dims}")
    if not 0 <= min_side <= max_side:
        raise ValueError(f"shapes: need 0 <= min_side <= max_side, got {min_side}, {max_side}")
    if max_size is not None and min_side ** min_dims > max_size:
        raise ValueError(f"shapes: {min_dims} axes of at least {min_side} exceed max_size={max_size}")
    ndim = draw(st.integers(min_dims, max_dims))
    shape, budget = [], max_size
    for i in range(ndim):
        left = ndim - i - 1                           # axes still to draw, each needs at least min_side
        high = max_side
        if budget is not None:
            high = min(high, budget // max(min_side, 1) ** left)
        if high < min_side:                           # no room for another axis: stop early
            if i < min_dims:
                high = min_side
            else:
                break
        side = draw(st.integers(min_side, high))
        shape.append(side)
        if budget is not None and side:
            budget //= side
    return tuple(shape)


@st.composite
def broadcastable_shapes(draw, n=2, min_dims=0, max_dims=4, min_side=1, max_side=4, max_size=24):
    """A tuple of ``n`` shapes that broadcast together (NumPy's rules).

    A common result shape is drawn with ``shapes(...)``; each input then drops some of its leading axes
    (so ranks differ) and turns some axes into size 1 (so they broadcast). The broadcast result of the
    drawn shapes has at most ``max_size`` elements. Use ``np.broadcast_shapes(*shapes)`` for the result.
    """
    result = draw(shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side,
                         max_size=max_size))
    out = []
    for _ in range(n):
        drop = draw(st.integers(0, len(result)))
        shape = list(result[drop:])
        for axis in range(len(shape)):
            if draw(st.booleans()):
                shape[axis] = 1
        out.append(tuple(shape))
    return tuple(out)


def _floats(low, high, dtype, min_magnitude):
    width = 32 if np.dtype(dtype) == np.float32 else 64
    if width == 32:
        low, high = float(np.float32(low)), float(np.float32(high))
    values = st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)
    if min_magnitude:
        if low > -min_magnitude and high < min_magnitude:
            raise ValueError(f"arrays: no value in [{low}, {high}] has magnitude >= {min_magnitude}")

        def away(v):                                  # push values in (-m, m) out to the nearest allowed side
            if abs(v) >= min_magnitude:
                return v
            side = min_magnitude if (v >= 0 and high >= min_magnitude) or low > -min_magnitude else -min_magnitude
            return side
        values = values.map(away)
    return values


@st.composite
def arrays(draw, shape=None, dtype=np.float64, elements=None, domain="real", min_value=None, max_value=None,
           min_magnitude=0.0, distinct=False):
    """A NumPy float array of ``shape`` (a tuple, or a strategy for one; default ``shapes()``).

    ``domain`` picks the value range from ``DOMAINS`` ("real", "positive", "unit", "probability", "wide");
    ``min_value``/``max_value`` override it. Keep away from an op's kinks with ``min_magnitude`` (every
    value has |x| >= it: use 1e-3 for relu and abs) and ``distinct=True`` (values at least 1/2000 of the
    range apart: no ties for max/min). ``elements`` replaces all of that with your own strategy.
    """
    if shape is None:
        shape = shapes()
    if not isinstance(shape, tuple):
        shape = draw(shape)
    dtype = np.dtype(dtype)
    if domain not in DOMAINS:
        raise ValueError(f"arrays: unknown domain {domain!r}; choose from {sorted(DOMAINS)}")
    low, high = DOMAINS[domain]
    low = low if min_value is None else min_value
    high = high if max_value is None else max_value
    if elements is not None:
        return draw(hnp.arrays(dtype, shape, elements=elements))
    if distinct:
        size = math.prod(shape)
        steps = 2000
        grid = [low + (high - low) * k / steps for k in range(steps + 1)]
        grid = [v for v in grid if abs(v) >= min_magnitude]
        if len(grid) < size:
            raise ValueError(f"arrays: cannot draw {size} distinct values in [{low}, {high}]")
        values = draw(st.lists(st.sampled_from(grid), min_size=size, max_size=size, unique=True))
        return np.array(values, dtype=dtype).reshape(shape)
    return draw(hnp.arrays(dtype, shape, elements=_floats(low, high, dtype, min_magnitude)))


@st.composite
def tensors(draw, shape=None, dtype=np.float64, requires_grad=True, **array_options):
    """A ``tt.Tensor`` (``requires_grad=True`` by default) whose values come from ``arrays(shape, dtype, ...)``;
    every keyword of ``arrays`` (domain, min_magnitude, distinct, ...) works here too."""
    values = draw(arrays(shape, dtype=dtype, **array_options))
    return Tensor(values, requires_grad=requires_grad, dtype=dtype)


@st.composite
def ids(draw, shape=None, num=5):
    """An int64 array of ``shape`` with ids in ``[0, num)`` (embedding rows, class targets)."""
    if shape is None:
        shape = shapes(max_size=12)
    if not isinstance(shape, tuple):
        shape = draw(shape)
    return draw(hnp.arrays(np.int64, shape, elements=st.integers(0, num - 1)))


@st.composite
def tangents(draw, *like, domain="real"):
    """One tangent per tensor of ``like``, a tuple of plain tensors (no grad) of the same shapes and dtypes:
    the directions ``tt.jvp(fn, inputs, tangents)`` differentiates along."""
    return tuple(Tensor(draw(arrays(t.shape, dtype=t.dtype, domain=domain)), dtype=t.dtype) for t in like)
