"""A ``tt.Function`` that saves a view of its input is under the in-place check (issue 26, 4).

Saving the input array itself was caught, but ``ctx.save_for_backward(a.T)`` (or ``a.reshape(-1)``)
escaped, even under ``detect_anomaly()``: after ``x.data += 10`` backward gave [22, 24, 26], not [2, 4, 6].
"""
import numpy as np
import pytest

import tinytensor as tt

VIEWS = {"T": lambda a: a.T, "reshape": lambda a: a.reshape(-1), "slice": lambda a: a[::1],
         "view of a view": lambda a: a.reshape(1, -1)[0].T}


def square_saving(view):
    class Square(tt.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(view(a))
            return a * a

        @staticmethod
        def backward(ctx, grad):
            (seen,) = ctx.saved_tensors
            return grad * 2 * seen.reshape(grad.shape)          # d/da a^2 = 2a
    return Square.apply


@pytest.mark.parametrize("anomaly", [False, True])
@pytest.mark.parametrize("name", list(VIEWS))
def test_a_saved_view_of_an_input_changed_in_place_is_refused(name, anomaly):
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = square_saving(VIEWS[name])(x).sum()
    x.data += 10
    with _maybe(anomaly):
        with pytest.raises(RuntimeError, match="changed in place"):
            y.backward()


@pytest.mark.parametrize("name", list(VIEWS))
def test_a_saved_view_gives_the_right_gradient_when_nothing_changed(name):
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    square_saving(VIEWS[name])(x).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])


def _maybe(anomaly):
    import contextlib
    return tt.detect_anomaly() if anomaly else contextlib.nullcontext()
