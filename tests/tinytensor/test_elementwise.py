"""Elementwise ops: values against NumPy, gradients by gradcheck over drawn (broadcast) shapes, kinks exactly."""
import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import testing as ttst

# name -> (op, NumPy reference, domain options for tinytensor.testing.arrays)
UNARY = {
    "exp": (tt.exp, np.exp, {}),
    "log": (tt.log, np.log, {"domain": "positive"}),
    "tanh": (tt.tanh, np.tanh, {}),
    "sqrt": (tt.sqrt, np.sqrt, {"domain": "positive"}),
    "relu": (tt.relu, lambda a: np.maximum(a, 0), {"min_magnitude": 1e-3}),
    "sigmoid": (tt.sigmoid, lambda a: 1 / (1 + np.exp(-a)), {"domain": "wide", "max_value": 8.0}),
    "abs": (tt.abs, np.abs, {"min_magnitude": 1e-3}),
    "neg": (lambda x: -x, np.negative, {}),
}

BINARY = {
    "add": (lambda a, b: a + b, np.add, {}),
    "sub": (lambda a, b: a - b, np.subtract, {}),
    "mul": (lambda a, b: a * b, np.multiply, {}),
    "div": (lambda a, b: a / b, np.divide, {"domain": "positive"}),
    "pow": (lambda a, b: a ** b, np.power, {"domain": "positive"}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_gradcheck_and_values(name, data):
    op, reference, options = UNARY[name]
    x = data.draw(ttst.tensors(ttst.shapes(), **options), label="x")
    np.testing.assert_allclose(op(x).data, reference(x.data), rtol=1e-12, atol=1e-12)
    assert tt.gradcheck(op, x)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_gradcheck_over_broadcast_shapes(name, data):
    op, reference, options = BINARY[name]
    sa, sb = data.draw(ttst.broadcastable_shapes(2), label="shapes")
    a = data.draw(ttst.tensors(sa, domain="positive" if name == "pow" else "real"), label="a")
    b = data.draw(ttst.tensors(sb, **options), label="b")
    out = op(a, b)
    assert out.shape == np.broadcast_shapes(sa, sb)
    np.testing.assert_allclose(out.data, reference(a.data, b.data), rtol=1e-12)
    assert tt.gradcheck(op, a, b)


@given(ttst.tensors(ttst.shapes(), domain="positive"))
def test_python_scalars_on_both_sides(x):
    fns = [lambda x: x + 2, lambda x: 2 + x, lambda x: 3 - x, lambda x: x * 1.5, lambda x: 1.5 * x,
           lambda x: 2 / x, lambda x: x / 4, lambda x: x ** 2, lambda x: 2 ** x, lambda x: x ** 0.5]
    refs = [x.data + 2, 2 + x.data, 3 - x.data, 1.5 * x.data, 1.5 * x.data, 2 / x.data, x.data / 4,
            x.data ** 2, 2 ** x.data, np.sqrt(x.data)]
    for fn, ref in zip(fns, refs):
        np.testing.assert_allclose(fn(x).data, ref, rtol=1e-12)
        assert tt.gradcheck(fn, x)


@given(data=st.data())
def test_where_gradcheck(data):
    sc, sa, sb = data.draw(ttst.broadcastable_shapes(3), label="shapes")
    cond = data.draw(ttst.arrays(sc), label="cond") > 0
    a = data.draw(ttst.tensors(sa), label="a")
    b = data.draw(ttst.tensors(sb), label="b")
    np.testing.assert_array_equal(tt.where(cond, a, b).data, np.where(cond, a.data, b.data))
    assert tt.gradcheck(lambda a, b: tt.where(cond, a, b), a, b)


@given(data=st.data())
def test_masked_fill_gradcheck(data):
    sx, sm = data.draw(ttst.broadcastable_shapes(2), label="shapes")
    sx = np.broadcast_shapes(sx, sm)            # the mask may broadcast to x, never grow it
    x = data.draw(ttst.tensors(sx), label="x")
    mask = data.draw(ttst.arrays(sm), label="mask") > 0
    out = x.masked_fill(mask, -7.0)
    np.testing.assert_array_equal(out.data, np.where(mask, -7.0, x.data))
    assert tt.gradcheck(lambda x: x.masked_fill(mask, -7.0), x)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, np.broadcast_to(~mask, sx).astype(float))


def test_pow_gradient_for_both_base_and_exponent_by_hand():
    a = tt.tensor([2.0, 3.0], dtype=np.float64, requires_grad=True)
    b = tt.tensor([3.0, 0.5], dtype=np.float64, requires_grad=True)
    (a ** b).sum().backward()
    np.testing.assert_allclose(a.grad, [3 * 4.0, 0.5 * 3.0 ** -0.5])        # b a^(b-1)
    np.testing.assert_allclose(b.grad, [8 * math.log(2), math.sqrt(3) * math.log(3)])   # a^b log a


# ----- kinks: PyTorch's conventions, exactly -----

def test_relu_at_zero_has_gradient_zero():
    x = tt.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


def test_abs_at_zero_has_gradient_zero():
    x = tt.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 1.0])


def test_sigmoid_and_tanh_stay_finite_for_huge_inputs():
    x = tt.tensor([-1000.0, 1000.0], requires_grad=True)
    with np.errstate(over="raise"):
        s = x.sigmoid()
    np.testing.assert_array_equal(s.data, [0.0, 1.0])
    (s.sum() + x.tanh().sum()).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


# ----- comparisons and dtypes -----

def test_comparisons_give_bool_tensors_without_gradient():
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [(x < 2, [1, 0, 0]), (x <= 2, [1, 1, 0]), (x > 2, [0, 0, 1]),
                             (x >= 2, [0, 1, 1]), (x == 2, [0, 1, 0]), (x != 2, [1, 0, 1])]:
        assert result.dtype == np.bool_ and not result.requires_grad
        np.testing.assert_array_equal(result.data, np.array(expected, dtype=bool))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_scalars_take_the_tensor_dtype(dtype):
    x = tt.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
    for y in (x + 1.5, 1.5 + x, x - 1, 1 - x, x * 2.5, 2.5 * x, x / 3.0, 3.0 / x, x ** 2.0, 2.0 ** x,
              x + np.float64(1.0), x * np.array(2.0)):
        assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype


def test_int_tensor_meets_float_tensor():
    i = tt.tensor([1, 2])
    x = tt.tensor([0.5, 0.5], requires_grad=True)
    y = i * x
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])
    assert (tt.tensor([1, 2]) / tt.tensor([2, 4])).dtype == np.float32


@example(shapes=((), (2, 1)))
@given(shapes=ttst.broadcastable_shapes(2))
def test_gradients_sum_back_to_each_broadcast_shape(shapes):
    a = tt.tensor(np.ones(shapes[0]), requires_grad=True)
    b = tt.tensor(np.ones(shapes[1]), requires_grad=True)
    (a * b).sum().backward()
    out_size = math.prod(np.broadcast_shapes(*shapes))
    assert a.grad.shape == shapes[0] and b.grad.shape == shapes[1]
    np.testing.assert_array_equal(a.grad, np.full(shapes[0], out_size / max(math.prod(shapes[0]), 1)))
    np.testing.assert_array_equal(b.grad, np.full(shapes[1], out_size / max(math.prod(shapes[1]), 1)))


def test_functional_names_match_operators():
    a = tt.tensor([1.0, 2.0], requires_grad=True)
    b = tt.tensor([3.0, 5.0])
    for fn, ref in [(F.add, a + b), (F.sub, a - b), (F.mul, a * b), (F.div, a / b), (F.pow, a ** b)]:
        np.testing.assert_array_equal(fn(a, b).data, ref.data)
    np.testing.assert_array_equal(F.neg(a).data, -a.data)
