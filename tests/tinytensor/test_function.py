"""tt.Function: a user-defined op is gradchecked like a built-in one, its gradients are checked against its
inputs (dtype, shape; broadcast shapes summed back), it records nothing under no_grad, and it runs on the
device of its inputs (the fake CuPy of test_device_seam.py stands in for a GPU)."""
import numpy as np
import pytest
from hypothesis import given, settings

import tinytensor as tt
from tinytensor import testing as ttst
from test_device_seam import fake_cuda, host, on_device  # noqa: F401 (fake_cuda: a fixture; the fake CuPy)


class Hypot(tt.Function):
    @staticmethod
    def forward(ctx, a, b):
        out = ctx.xp.sqrt(a * a + b * b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        return g * a / out, g * b / out              # the broadcast shape: the engine sums it back


class Scale(tt.Function):
    """x * k with a plain number k and an axis-free sum option: non-tensor arguments pass through."""

    @staticmethod
    def forward(ctx, x, k, total):
        ctx.k, ctx.shape = k, x.shape
        return (x * k).sum() if total else x * k

    @staticmethod
    def backward(ctx, g):
        dx = ctx.xp.broadcast_to(g * ctx.k, ctx.shape)
        return dx, None, None


@settings(max_examples=15, deadline=None)
@given(ttst.broadcastable_shapes(2), ttst.data())
def test_a_function_passes_gradcheck_over_broadcasting_shapes(shapes, data):
    a = data.draw(ttst.tensors(shapes[0], domain="positive"))
    b = data.draw(ttst.tensors(shapes[1]))
    assert tt.gradcheck(Hypot.apply, a, b)
    assert Hypot.apply(a, b).shape == np.broadcast_shapes(a.shape, b.shape)


def test_non_tensor_arguments_pass_through_and_get_no_gradient():
    x = tt.tensor(np.arange(6.0).reshape(2, 3), dtype="float64", requires_grad=True)
    assert tt.gradcheck(lambda t: Scale.apply(t, 3.0, False), x)
    assert tt.gradcheck(lambda t: Scale.apply(t, -2.0, True), x)
    y = Scale.apply(x, 2.0, True)
    assert y.shape == () and y.dtype == np.float64
    y.backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))


def test_float32_stays_float32_and_inputs_without_grad_get_none():
    a = tt.tensor([3.0, 5.0], requires_grad=True)
    b = tt.tensor(4.0)                               # no grad wanted: its gradient is never formed
    out = Hypot.apply(a, b)
    assert out.dtype == np.float32 and out.requires_grad
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad is None
    np.testing.assert_allclose(a.grad, [0.6, 5 / np.sqrt(41)], rtol=1e-6)


def test_under_no_grad_nothing_is_recorded():
    a = tt.tensor([3.0], requires_grad=True)
    with tt.no_grad():
        out = Hypot.apply(a, a)
    assert not out.requires_grad and out.is_leaf


class WrongDtype(tt.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g.astype(np.float64) * 2              # a float32 input would silently get float64


class WrongShape(tt.Function):
    @staticmethod
    def forward(ctx, x):
        return x.sum()

    @staticmethod
    def backward(ctx, g):
        return g * np.ones((5,), dtype=g.dtype)      # (5,) for an input of shape (3,)


class WrongCount(tt.Function):
    @staticmethod
    def forward(ctx, x, k):
        return x * k

    @staticmethod
    def backward(ctx, g):
        return g                                     # forgets k's None


@pytest.mark.parametrize("fn, error, message", [
    (WrongDtype, TypeError, r"WrongDtype.backward: the gradient of argument 0 is float64, the argument is float32"),
    (WrongShape, ValueError,
     r"WrongShape.backward: the gradient of argument 0 has shape \(5,\), the argument has shape \(3,\)"),
    (WrongCount, ValueError, r"WrongCount.backward returned 1 gradients for 2 forward arguments"),
])
def test_a_backward_that_breaks_the_rules_gets_one_line_naming_the_function(fn, error, message):
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = fn.apply(x, 2.0) if fn is WrongCount else fn.apply(x)
    with pytest.raises(error, match=message) as info:
        out.sum().backward()
    assert "\n" not in str(info.value)


def test_forward_must_return_one_array_and_apply_needs_a_tensor():
    class Pair(tt.Function):
        @staticmethod
        def forward(ctx, x):
            return x, x

    with pytest.raises(TypeError, match="Pair.forward must return one array, not tuple"):
        Pair.apply(tt.tensor([1.0]))
    with pytest.raises(TypeError, match="no Tensor among the arguments"):
        Hypot.apply(1.0, 2.0)


def test_only_what_a_function_saved_is_watched_for_in_place_changes():
    class AddSavesB(tt.Function):                    # d/da (a + b * b) = 1 needs nothing of a
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(b)
            return a + b * b

        @staticmethod
        def backward(ctx, g):
            (b,) = ctx.saved_tensors
            return g, 2 * g * b

    a = tt.tensor([1.0, 2.0], requires_grad=True)
    b = tt.tensor([3.0, 4.0], requires_grad=True)
    out = AddSavesB.apply(a, b)
    a.data = np.zeros(2, np.float32)                 # not saved: backward is still right
    out.sum().backward()
    np.testing.assert_array_equal(b.grad, [6, 8])
    out = AddSavesB.apply(a, b)
    b.data = np.zeros(2, np.float32)                 # saved: refused, naming the Function
    with pytest.raises(RuntimeError, match=r"backward of 'AddSavesB': an input of shape \(2,\) was changed"):
        out.sum().backward()


def test_graph_stats_count_what_a_function_saved():
    class ExpTwice(tt.Function):
        @staticmethod
        def forward(ctx, x):
            e = ctx.xp.exp(x)                        # an intermediate kept for backward
            ctx.save_for_backward(e)
            return e * 2

        @staticmethod
        def backward(ctx, g):
            (e,) = ctx.saved_tensors
            return g * 2 * e

    x = tt.tensor(np.zeros(256), dtype="float64", requires_grad=True)
    out = ExpTwice.apply(x)
    stats = tt.graph_stats(out)
    assert (stats.nodes, stats.arrays, stats.bytes) == (1, 2, 2 * 256 * 8)     # the result and e
    assert tt.gradcheck(ExpTwice.apply, x)


def test_a_function_stays_on_the_device_and_matches_the_cpu(fake_cuda):
    """``ctx.xp`` is the device's array module; the result and the gradients stay on the device."""
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 2.0, (2, 3)), rng.standard_normal((3,))
    results = {}
    for device in ("cpu", "cuda"):
        a, b = (tt.tensor(v, dtype="float64", requires_grad=True, device=device) for v in values)
        out = Hypot.apply(a, b)
        (out * out).sum().backward()
        if device == "cuda":
            assert on_device(out.data) and on_device(a.grad) and on_device(b.grad)
        results[device] = [host(x) for x in (out.data, a.grad, b.grad)]
    for cpu, dev in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(dev, cpu, rtol=1e-12)
