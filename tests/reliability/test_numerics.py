"""Numerical safety: ``tt.detect_anomaly()`` stops at the first op that makes NaN/Inf, and the fused ops of a
GPT stay finite, forward and backward, for extreme inputs in float32 and float64.

"Extreme" here means what a diverging or badly initialised model produces: logits of +-1e4, rows that are
constant (all 0, all 1e4, all -1e4), and one huge logit among ordinary ones.
"""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # log(0) and 0/0 warn in NumPy

DTYPES = [np.float32, np.float64]


# ----- detect_anomaly -----

def test_log_of_zero_raises_in_forward_naming_op_and_shape():
    x = tt.tensor([[1.0, 0.0, 2.0]], requires_grad=True)
    with tt.detect_anomaly():
        with pytest.raises(tt.AnomalyError) as info:
            tt.log(x)
    message = str(info.value)
    assert "forward" in message and "'log'" in message and "(1, 3)" in message


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_over_zero_raises_naming_div_and_both_shapes(dtype):
    a = tt.zeros((2, 3), dtype=dtype, requires_grad=True)
    b = tt.zeros((3,), dtype=dtype)
    with tt.detect_anomaly(), pytest.raises(tt.AnomalyError) as info:
        a / b
    message = str(info.value)
    assert "'div'" in message and "(2, 3), (3,)" in message


def test_sqrt_at_zero_raises_in_backward_at_sqrt_not_later_ops():
    x = tt.tensor([0.0, 4.0], requires_grad=True)
    with tt.detect_anomaly():
        y = (tt.sqrt(x) * 3.0).sum()          # forward is finite: sqrt(0) = 0
        with pytest.raises(tt.AnomalyError) as info:
            y.backward()                       # d/dx sqrt(x) = 1 / (2 sqrt(x)) = inf at 0
    message = str(info.value)
    assert "backward of 'sqrt'" in message and "(2,)" in message
    assert x.grad is None                      # it stopped before anything reached the leaf


def test_the_first_op_is_named_not_the_ops_that_carry_the_nan_on():
    x = tt.tensor([1000.0, 1.0], requires_grad=True)
    with tt.detect_anomaly(), pytest.raises(tt.AnomalyError) as info:
        ((x * 1.0).exp() - 1.0).sum()         # exp(1000) overflows in float32; sub and sum only carry it
    assert "'exp'" in str(info.value)


def test_nan_made_outside_is_not_blamed_on_the_ops_inside():
    x = tt.tensor([0.0, 1.0], requires_grad=True)
    y = tt.log(x)                              # -inf, made outside the context: no check, no error
    assert np.isinf(y.data[0])
    with tt.detect_anomaly():
        z = y * 2.0                            # inputs already hold inf: not this op's fault
    assert np.isinf(z.data[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_finite_graph_runs_unchanged_under_detect_anomaly(dtype):
    data = np.random.default_rng(0).standard_normal((3, 5)).astype(dtype)
    grads = []
    for checking in (False, True):
        x = tt.tensor(data, dtype=dtype, requires_grad=True)
        w = tt.tensor(np.ones(5), dtype=dtype, requires_grad=True)
        if checking:
            with tt.detect_anomaly():
                F.cross_entropy(F.gelu(F.layer_norm(x, w)), np.array([0, 1, 4])).backward()
        else:
            F.cross_entropy(F.gelu(F.layer_norm(x, w)), np.array([0, 1, 4])).backward()
        grads.append((x.grad, w.grad))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


def test_leaving_the_context_stops_checking_even_after_an_error():
    from tinytensor.tensor import _backward_hooks, _hooks
    before = (len(_hooks), len(_backward_hooks))
    zero = tt.tensor([0.0])
    with pytest.raises(tt.AnomalyError):
        with tt.detect_anomaly():
            tt.log(zero)
    assert (len(_hooks), len(_backward_hooks)) == before
    assert np.isneginf(tt.log(zero).data[0])          # no check outside the context
    assert issubclass(tt.AnomalyError, FloatingPointError)


# ----- extreme inputs stay finite -----

def _rows(dtype):
    """name -> (2, 6) array of extreme logits."""
    big = 1e4
    return {
        "plus_minus_1e4": np.array([[big, -big, 0, 1, -1, big], [-big, -big, -big, -big, -big, big]]),
        "constant_0": np.zeros((2, 6)),
        "constant_1e4": np.full((2, 6), big),
        "constant_-1e4": np.full((2, 6), -big),
        "one_huge": np.array([[0, 0, 0, big, 0, 0], [1, -1, 2, -2, 0.5, big]]),
    }


CASES = [(dtype, name) for dtype in DTYPES for name in _rows(np.float64)]
IDS = [f"{np.dtype(d).name}-{n}" for d, n in CASES]


def _leaf(dtype, name):
    return tt.tensor(_rows(dtype)[name], dtype=dtype, requires_grad=True)


def _assert_finite_forward_backward(x, out):
    assert out.dtype == x.dtype
    assert np.isfinite(out.data).all(), f"forward not finite: {out.data}"
    g = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    out.backward(g)
    assert x.grad is not None and np.isfinite(x.grad).all(), f"backward not finite: {x.grad}"


@pytest.mark.parametrize("dtype,name", CASES, ids=IDS)
def test_softmax_is_finite_and_sums_to_one(dtype, name):
    x = _leaf(dtype, name)
    out = F.softmax(x, axis=-1)
    _assert_finite_forward_backward(x, out)
    np.testing.assert_allclose(out.data.sum(axis=-1), 1.0, rtol=1e-6)
    if name.startswith("constant"):
        np.testing.assert_allclose(out.data, 1 / 6, rtol=1e-6)
    if name == "one_huge":
        np.testing.assert_allclose([out.data[0, 3], out.data[1, 5]], 1.0)


@pytest.mark.parametrize("dtype,name", CASES, ids=IDS)
def test_log_softmax_is_finite_and_exact_for_huge_gaps(dtype, name):
    x = _leaf(dtype, name)
    out = F.log_softmax(x, axis=-1)
    _assert_finite_forward_backward(x, out)
    expected = x.data - x.data.max(axis=-1, keepdims=True)       # the max wins all the mass
    top = x.data == x.data.max(axis=-1, keepdims=True)
    expected = expected - np.log(top.sum(axis=-1, keepdims=True))
    far = expected < -100                                         # exp() of these is 0 in float64 too
    np.testing.assert_allclose(out.data[far], expected[far], rtol=1e-6)
    if name.startswith("constant"):
        np.testing.assert_allclose(out.data, -np.log(6), rtol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype,name", CASES, ids=IDS)
def test_cross_entropy_is_finite(dtype, name, reduction):
    x = _leaf(dtype, name)
    targets = np.array([3, 0])
    out = F.cross_entropy(x, targets, reduction=reduction)
    _assert_finite_forward_backward(x, out)
    losses = F.cross_entropy(tt.tensor(x.data, dtype=dtype), targets, reduction="none").data
    if name == "one_huge":                           # right class by a 1e4 margin: loss 0; wrong: 1e4 - 1
        np.testing.assert_allclose(losses, [0.0, 1e4 - 1], rtol=1e-6, atol=1e-6)
    if name.startswith("constant"):                  # uniform: log(C), to float precision even at 1e4
        np.testing.assert_allclose(losses, np.log(6), rtol=1e-6)
        y = tt.tensor(x.data, dtype=dtype, requires_grad=True)
        F.cross_entropy(y, targets, reduction="sum").backward()
        np.testing.assert_allclose(y.grad, 1 / 6 - np.eye(6)[targets], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype,name", CASES, ids=IDS)
def test_cross_entropy_in_3d_with_ignored_positions_is_finite(dtype, name):
    x = tt.tensor(_rows(dtype)[name].reshape(1, 2, 6), dtype=dtype, requires_grad=True)
    out = F.cross_entropy(x, np.array([[5, -100]]))
    _assert_finite_forward_backward(x, out)
    assert not x.grad[0, 1].any()                    # the ignored position gets no gradient


@pytest.mark.parametrize("dtype,name", CASES, ids=IDS)
def test_layer_norm_is_finite_and_constant_rows_give_the_bias(dtype, name):
    x = _leaf(dtype, name)
    w = tt.tensor(np.linspace(0.5, 2, 6), dtype=dtype, requires_grad=True)
    b = tt.tensor(np.linspace(-1, 1, 6), dtype=dtype, requires_grad=True)
    out = F.layer_norm(x, w, b)
    _assert_finite_forward_backward(x, out)
    assert np.isfinite(w.grad).all() and np.isfinite(b.grad).all()
    if name.startswith("constant"):
        np.testing.assert_allclose(out.data, np.broadcast_to(b.data, (2, 6)), atol=1e-3)
    else:
        xhat = (out.data - b.data) / w.data
        np.testing.assert_allclose(xhat.mean(axis=-1), 0, atol=1e-3)
        np.testing.assert_allclose(xhat.std(axis=-1), 1, rtol=1e-3)


@pytest.mark.parametrize("dtype,name", CASES, ids=IDS)
def test_gelu_is_finite_and_right_in_the_tails(dtype, name):
    x = _leaf(dtype, name)
    out = F.gelu(x)
    _assert_finite_forward_backward(x, out)
    tails = np.abs(x.data) >= 100
    np.testing.assert_allclose(out.data[tails], np.maximum(x.data[tails], 0), rtol=1e-6)
    x.grad = None
    F.gelu(x).backward(np.ones(x.shape, dtype=dtype))
    np.testing.assert_allclose(x.grad[tails], (x.data[tails] > 0).astype(dtype), atol=1e-6)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype,name", CASES, ids=IDS)
def test_attention_is_finite(dtype, name, causal):
    rows = _rows(dtype)[name]                        # (2, 6): T = 2 queries/keys of D = 6
    q = tt.tensor(rows.reshape(1, 1, 2, 6), dtype=dtype, requires_grad=True)
    k = tt.tensor(rows[::-1].reshape(1, 1, 2, 6), dtype=dtype, requires_grad=True)
    v = tt.tensor(np.arange(12.0).reshape(1, 1, 2, 6), dtype=dtype, requires_grad=True)
    out = F.scaled_dot_product_attention(q, k, v, causal=causal)
    _assert_finite_forward_backward(q, out)
    assert np.isfinite(k.grad).all() and np.isfinite(v.grad).all()
    # every output row is a convex combination of the rows of v
    assert (out.data >= v.data.min() - 1e-3).all() and (out.data <= v.data.max() + 1e-3).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_inputs_trip_no_anomaly_in_a_whole_block(dtype):
    """A transformer-shaped chain on +-1e4 inputs runs clean under detect_anomaly, backward included."""
    rows = _rows(dtype)["plus_minus_1e4"]
    x = tt.tensor(rows.reshape(1, 1, 2, 6), dtype=dtype, requires_grad=True)
    with tt.detect_anomaly():
        h = F.layer_norm(x, tt.ones(6, dtype=dtype), tt.zeros(6, dtype=dtype))
        h = F.scaled_dot_product_attention(x, x, h)
        logits = F.gelu(h * 1e4).reshape(2, 6)
        F.cross_entropy(logits, np.array([1, 2])).backward()
    assert np.isfinite(x.grad).all()
