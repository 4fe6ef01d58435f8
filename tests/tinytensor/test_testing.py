"""tinytensor.testing: the strategies keep their promises, and the module docstring's example works."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import testing as ttst


@given(ttst.shapes())
def test_default_shapes_are_small(shape):
    assert 0 <= len(shape) <= 4 and all(1 <= n <= 4 for n in shape) and math.prod(shape) <= 24


@given(st.data())
def test_shapes_respect_every_bound(data):
    min_dims = data.draw(st.integers(0, 3))
    max_dims = data.draw(st.integers(min_dims, 5))
    min_side = data.draw(st.integers(0, 2))
    max_side = data.draw(st.integers(max(min_side, 1), 6))
    max_size = data.draw(st.integers(max(min_side ** min_dims, 1), 40))
    shape = data.draw(ttst.shapes(min_dims, max_dims, min_side, max_side, max_size))
    assert min_dims <= len(shape) <= max_dims
    assert all(min_side <= n <= max_side for n in shape)
    assert math.prod(shape) <= max_size


def test_shapes_cover_0d_and_size_1_axes():
    seen = []

    @given(ttst.shapes())
    def collect(shape):
        seen.append(shape)
    collect()
    assert () in seen and any(1 in s for s in seen if s)


@given(st.integers(1, 4).flatmap(lambda n: ttst.broadcastable_shapes(n)))
def test_broadcastable_shapes_broadcast(shapes):
    assert math.prod(np.broadcast_shapes(*shapes)) <= 24


def test_broadcastable_shapes_differ_in_rank_and_use_size_1():
    seen = []

    @given(ttst.broadcastable_shapes(2))
    def collect(shapes):
        seen.append(shapes)
    collect()
    assert any(len(a) != len(b) for a, b in seen)
    assert any(1 in a + b and a != b for a, b in seen)


@given(st.data())
def test_arrays_stay_in_their_domain(data):
    for domain, (low, high) in ttst.DOMAINS.items():
        a = data.draw(ttst.arrays(ttst.shapes(), domain=domain))
        assert a.dtype == np.float64 and np.all((low <= a) & (a <= high)), domain
    away = data.draw(ttst.arrays((4, 3), dtype=np.float32, min_magnitude=1e-3))
    assert away.dtype == np.float32 and np.all(np.abs(away) >= np.float32(1e-3))
    distinct = data.draw(ttst.arrays((2, 6), distinct=True, min_magnitude=0.01))
    gaps = np.diff(np.sort(distinct.reshape(-1)))
    assert np.all(gaps >= 4 / 2000 - 1e-12) and np.all(np.abs(distinct) >= 0.01)


@given(ttst.tensors(ttst.shapes(max_size=6), dtype=np.float32), ttst.ids((2, 3), num=4))
def test_tensors_and_ids(x, ids):
    assert isinstance(x, tt.Tensor) and x.requires_grad and x.dtype == np.float32
    assert ids.dtype == np.int64 and ids.shape == (2, 3) and ids.min() >= 0 and ids.max() < 4


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_bad_strategy_arguments_are_refused():
    with pytest.raises(ValueError, match="domain"):
        ttst.arrays((2,), domain="complex").example()
    with pytest.raises(ValueError, match="max_size"):
        ttst.shapes(min_dims=3, min_side=4, max_size=10).example()


def test_the_module_docstring_example_runs():
    """Run the example code of tinytensor.testing's docstring as a user would copy it."""
    lines = [line[4:] for line in ttst.__doc__.splitlines() if line.startswith("    ")]
    namespace = {}
    exec("\n".join(lines), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_")]
    assert len(tests) == 3
    for test in tests:
        test()
    assert tt.gradcheck(namespace["softplus"], tt.tensor([-1.0, 0.0, 2.0], dtype=np.float64, requires_grad=True))


@given(ttst.tensors(ttst.shapes()))
def test_dropout_gradcheck_with_a_fixed_seed(x):
    def fn(x):
        tt.manual_seed(3)                          # the same mask on every call
        return F.dropout(x, 0.5, training=True)
    assert tt.gradcheck(fn, x)
    out = fn(x).data
    assert np.all((out == 0) | np.isclose(out, 2 * x.data))     # each element dropped or scaled by 1/(1-p)
