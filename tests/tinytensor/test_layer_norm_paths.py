"""Layer norm's two ways to one result (tinytensor/ops/norm.py): from x itself (mean and rstd kept) where
every row's mean is small against its spread, from xc = x - mean otherwise. Each way against the twin."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor.schedule import parallel
from tinytensor import reference as R
from tinytensor.ops import norm

from test_fused import assert_same


@pytest.fixture
def ways(monkeypatch):
    """The names of the forward ways taken, in order."""
    taken = []
    for name in ("_forward_from_x", "_forward_rows"):
        real = getattr(norm, name)
        monkeypatch.setattr(norm, name, lambda *a, _real=real, _name=name: (taken.append(_name), _real(*a))[1])
    return taken


def _inputs(x_np, with_weight=True, with_bias=True, dtype=np.float64):
    rng = np.random.default_rng(3)
    D = x_np.shape[-1]
    x = tt.tensor(x_np, dtype=dtype, requires_grad=True)
    w = tt.tensor(rng.standard_normal(D), dtype=dtype, requires_grad=True) if with_weight else None
    b = tt.tensor(rng.standard_normal(D), dtype=dtype, requires_grad=True) if with_bias else None
    return x, w, b


@pytest.mark.parametrize("offset,way", [(0.0, "_forward_from_x"), (50.0, "_forward_rows")])
@pytest.mark.parametrize("with_weight,with_bias", [(True, True), (True, False), (False, True), (False, False)])
def test_each_way_matches_the_twin(ways, offset, way, with_weight, with_bias):
    x_np = offset + np.random.default_rng(1).standard_normal((3, 5, 8))
    inputs = list(_inputs(x_np, with_weight, with_bias))       # None where left out (assert_same skips it)
    assert_same(F.layer_norm, R.layer_norm, inputs, rtol=1e-10, atol=1e-12)
    assert ways and set(ways) == {way}


def test_one_row_far_from_zero_sends_the_whole_call_from_xc(ways):
    x_np = np.random.default_rng(2).standard_normal((6, 8))
    x_np[4] += 10.0                                  # mean^2 > var in this row only
    assert_same(F.layer_norm, R.layer_norm, list(_inputs(x_np)), rtol=1e-10, atol=1e-12)
    assert set(ways) == {"_forward_rows"}


def test_constant_and_non_finite_rows_go_from_xc(ways):
    for x_np in (np.ones((2, 4)), np.array([[1.0, np.inf, 0.0, 2.0], [1.0, 2.0, 3.0, 4.0]])):
        with np.errstate(invalid="ignore"):
            F.layer_norm(tt.tensor(x_np), None, None)
    assert ways == ["_forward_rows", "_forward_rows"]


def test_from_x_in_row_blocks_matches_the_twin(monkeypatch, ways):
    """Forward's rstd w^T x part and backward both in blocks of 3 rows (the last one shorter)."""
    monkeypatch.setattr(parallel, "CACHE_BLOCK", 12)
    x_np = np.random.default_rng(4).standard_normal((2, 5, 4))
    assert_same(F.layer_norm, R.layer_norm, list(_inputs(x_np)), rtol=1e-10, atol=1e-12)
    assert set(ways) == {"_forward_from_x"}


@pytest.mark.parametrize("shift,way", [(0.0, "_forward_from_x"), (0.9, "_forward_from_x"), (1.5, "_forward_rows")])
def test_float32_stays_precise_on_both_sides_of_the_limit(ways, shift, way):
    """Rows whose mean comes close to their spread (mean = 0.9 std) go from x and stay within 2e-6 of
    float64, as the path from xc does far from 0 (test_fused.py); a mean of 1.5 std goes from xc."""
    rng = np.random.default_rng(11)
    z = rng.standard_normal((16, 768))
    z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, keepdims=True)
    x_np = (z + shift).astype(np.float32)
    g = rng.standard_normal((16, 768)).astype(np.float32)
    results = {}
    for dtype in (np.float32, np.float64):
        x, w, b = _inputs(x_np, dtype=dtype)
        y = F.layer_norm(x, w, b)
        y.backward(g.astype(dtype))
        results[dtype] = (y.data, x.grad, w.grad, b.grad)
    for got, want in zip(results[np.float32], results[np.float64]):
        assert np.abs(got - want).max() <= 2e-6 * np.abs(want).max()
    assert set(ways) == {way}
