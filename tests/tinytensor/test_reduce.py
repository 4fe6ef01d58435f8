"""Reductions: sum, mean, var, max, min over drawn axes; ties at max/min share the gradient (PyTorch)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
from tinytensor import testing as ttst


@st.composite
def tensor_and_axis(draw, **array_options):
    """A tensor and an axis argument for it: None, an int (maybe negative) or a tuple of axes."""
    x = draw(ttst.tensors(ttst.shapes(), **array_options))
    n = max(x.ndim, 1)
    axis = draw(st.one_of(st.none(), st.integers(-n, n - 1),
                          st.lists(st.integers(0, n - 1), unique=True, max_size=n).map(tuple)))
    if x.ndim == 0 and isinstance(axis, tuple):
        axis = ()
    keepdims = draw(st.booleans())
    return x, axis, keepdims


def np_axis(x, axis):
    """The same axis for NumPy, which (unlike PyTorch) rejects axis 0 on a 0-d array."""
    if x.ndim == 0:
        return None
    return axis


@pytest.mark.parametrize("name", ["sum", "mean", "var"])
@given(case=tensor_and_axis())
def test_smooth_reductions(name, case):
    x, axis, keepdims = case
    op = getattr(tt, name)
    out = op(x, axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(x.data, axis=np_axis(x, axis), keepdims=keepdims and x.ndim > 0)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    assert tt.gradcheck(lambda x: op(x, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("name", ["max", "min"])
@given(case=tensor_and_axis(distinct=True))
def test_max_min_without_ties(name, case):
    x, axis, keepdims = case
    op = getattr(tt, name)
    out = op(x, axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(x.data, axis=np_axis(x, axis), keepdims=keepdims and x.ndim > 0)
    np.testing.assert_array_equal(out.data, expected)
    assert tt.gradcheck(lambda x: op(x, axis=axis, keepdims=keepdims), x)


def test_methods_match_functions():
    x = tt.tensor([[1.0, 5.0], [3.0, 2.0]], requires_grad=True)
    assert x.sum().item() == 11.0 and x.mean().item() == 2.75
    np.testing.assert_array_equal(x.max(axis=0).data, [3.0, 5.0])
    np.testing.assert_array_equal(x.min(axis=1).data, [1.0, 2.0])
    np.testing.assert_allclose(x.var(axis=1).data, [4.0, 0.25])     # population variance, ddof=0


# ----- ties: PyTorch's amax/amin convention, the gradient is shared equally -----

def test_max_ties_share_the_gradient_equally():
    x = tt.tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5, 0.0])


def test_max_ties_per_row_with_axis():
    x = tt.tensor([[2.0, 2.0, 2.0], [1.0, 4.0, 0.0]], requires_grad=True)
    (x.max(axis=1) * tt.tensor([3.0, 5.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0, 1.0], [0.0, 5.0, 0.0]])


def test_min_ties_share_the_gradient_equally():
    x = tt.tensor([[0.0, 0.0], [0.0, 1.0]], requires_grad=True)
    x.min(axis=None, keepdims=True).sum().backward()
    third = np.float32(1) / np.float32(3)
    np.testing.assert_array_equal(x.grad, np.array([[third, third], [third, 0.0]], dtype=np.float32))


def test_reduction_gradient_dtype_is_kept_with_ties():
    x = tt.tensor([1.0, 1.0, 1.0], requires_grad=True)
    x.max().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [1 / 3] * 3)


def test_reductions_of_a_0d_tensor_accept_axis_0_and_minus_1():
    x = tt.tensor(2.5, requires_grad=True)
    for axis in (None, 0, -1):
        assert x.sum(axis=axis).item() == 2.5 and x.max(axis=axis).item() == 2.5
    x.mean(axis=0).backward()
    assert x.grad == 1.0


def test_mean_gradient_is_one_over_count():
    x = tt.tensor(np.ones((2, 5)), requires_grad=True)
    x.mean(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 5), 0.2))


def test_axis_out_of_range_names_axis_and_shape():
    x = tt.tensor(np.ones((2, 3)))
    for op in (tt.sum, tt.mean, tt.max, tt.var):
        with pytest.raises(IndexError, match=r"axis 2 .*\(2, 3\)"):
            op(x, axis=2)


def test_max_of_an_empty_tensor_is_an_error():
    with pytest.raises(ValueError, match=r"max.*\(0, 3\)"):
        tt.tensor(np.ones((0, 3))).max()
