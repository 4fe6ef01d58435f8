"""tt.gradcheck itself: it passes correct backwards and catches wrong ones, naming where and by how much."""
import re

import numpy as np
import pytest
from hypothesis import given

import tinytensor as tt
from tinytensor import testing as ttst
from tinytensor.tensor import Tensor


def cube(x):
    """x^3 with a correct backward."""
    def backward(g):  # d/dx x^3 = 3 x^2
        return (g * 3 * x.data * x.data,)
    return Tensor._make(x.data ** 3, (x,), backward, "cube")


def broken_cube(x):
    """x^3 whose backward forgets the factor 3: the classic wrong derivative."""
    def backward(g):
        return (g * x.data * x.data,)
    return Tensor._make(x.data ** 3, (x,), backward, "broken_cube")


def off_by_one_element(x):
    """2x whose backward is wrong in one element only (flat index 4)."""
    def backward(g):
        grad = 2 * g
        grad.reshape(-1)[4] += 0.5
        return (grad,)
    return Tensor._make(2 * x.data, (x,), backward, "off_by_one_element")


def broken_mul(a, b):
    """a * b whose gradient for b is a copy of a's: only the second input is wrong."""
    def backward(g):
        return g * b.data, g * b.data
    return Tensor._make(a.data * b.data, (a, b), backward, "broken_mul")


def no_unbroadcast_add(a, b):
    """a + b that forgets to sum the gradient back to a broadcast input's shape."""
    def backward(g):
        return g, g
    return Tensor._make(a.data + b.data, (a, b), backward, "no_unbroadcast_add")


def t64(values, requires_grad=True):
    return tt.tensor(np.asarray(values, dtype=np.float64), dtype=np.float64, requires_grad=requires_grad)


def test_passes_a_correct_backward():
    assert tt.gradcheck(cube, t64([[0.5, -1.0, 2.0]])) is True


def test_catches_a_wrong_derivative_and_names_input_element_and_values():
    x = t64([0.5, -1.5, 2.0])
    with pytest.raises(tt.GradcheckError) as info:
        tt.gradcheck(broken_cube, x)
    message = str(info.value)
    assert "input 0" in message and "element (0,)" in message
    analytic, numeric = map(float, re.search(r"analytic (\S+) vs numeric (\S+)", message).groups())
    # the weighting is the seed-0 normal draw gradcheck uses: numeric = 3 x^2 r, analytic = x^2 r
    r = np.random.default_rng(0).standard_normal(3)[0]
    assert analytic == pytest.approx(0.25 * r, rel=1e-4)
    assert numeric == pytest.approx(0.75 * r, rel=1e-4)


def test_finds_the_one_wrong_element():
    x = t64(np.arange(6.0).reshape(2, 3))
    with pytest.raises(tt.GradcheckError, match=r"element \(1, 1\)"):
        tt.gradcheck(off_by_one_element, x)


def test_names_the_second_input_when_only_it_is_wrong():
    a, b = t64([1.0, 2.0]), t64([3.0, -1.0])
    with pytest.raises(tt.GradcheckError, match="input 1"):
        tt.gradcheck(broken_mul, a, b)
    # with b constant there is nothing wrong left to find
    assert tt.gradcheck(broken_mul, a, t64([3.0, -1.0], requires_grad=False))


def test_catches_a_gradient_of_the_wrong_shape():
    with pytest.raises(tt.GradcheckError, match=r"input 1 \(shape \(3,\)\).*shape \(2, 3\)"):
        tt.gradcheck(no_unbroadcast_add, t64(np.ones((2, 3))), t64([1.0, 2.0, 3.0]))


def test_catches_a_wrong_gradient_in_a_0d_input():
    with pytest.raises(tt.GradcheckError, match=r"element \(\)"):
        tt.gradcheck(broken_cube, t64(1.5))


def test_works_in_float64_and_leaves_float32_inputs_alone():
    x = tt.tensor([0.1, 0.2, 0.3], requires_grad=True)          # float32
    before = x.data.copy()
    seen = []

    def fn(v):
        seen.append(v.dtype)
        return cube(v)
    assert tt.gradcheck(fn, x)
    assert set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and np.array_equal(x.data, before) and x.grad is None


def test_non_tensor_and_constant_inputs_pass_through():
    w = t64([1.0, 2.0, 3.0], requires_grad=False)
    assert tt.gradcheck(lambda x, k, w: (x * w) ** k, t64([0.5, 1.5, 2.5]), 2, w)


def test_refuses_when_nothing_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        tt.gradcheck(cube, t64([1.0], requires_grad=False))


def test_refuses_a_function_that_does_not_return_a_tensor():
    with pytest.raises(TypeError, match="Tensor"):
        tt.gradcheck(lambda x: x.data, t64([1.0]))


def test_a_function_that_ignores_its_input_has_zero_gradient():
    assert tt.gradcheck(lambda x: t64([1.0, 2.0], requires_grad=False), t64([1.0]))


@given(ttst.tensors(ttst.shapes(max_size=12), domain="positive"))
def test_broken_backward_is_caught_on_every_drawn_shape(x):
    assert tt.gradcheck(cube, x)
    with pytest.raises(tt.GradcheckError):
        tt.gradcheck(broken_cube, x)
