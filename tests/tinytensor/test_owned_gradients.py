"""Trick 4 of tinytensor/accumulate.py: a backward that gives its array away (``Owned``, layer norm's dx) has
the other gradients of that input added into it in place; nothing another branch still reads is written."""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.functional as F
from tinytensor import accumulate
from tinytensor import reference as R


@pytest.fixture
def given_away(monkeypatch):
    """The arrays layer norm's backward gave away, in order."""
    arrays, real = [], accumulate.Owned.__init__

    def init(self, array):
        arrays.append(array)
        real(self, array)
    monkeypatch.setattr(accumulate.Owned, "__init__", init)
    return arrays


def _residual(impl, x, w, b, scale):
    """x + scale * layer_norm(x): the residual stream meets layer norm's gradient at x."""
    return x + impl.layer_norm(x, w, b) * scale


def test_the_residual_sum_is_taken_in_the_given_array_and_the_shared_gradient_is_untouched(given_away):
    rng = np.random.default_rng(0)
    grads = {}
    seed = rng.standard_normal((4, 6))
    for impl in (F, R):
        x, w, b = (tt.tensor(a, dtype=np.float64, requires_grad=True) for a in
                   (np.linspace(-1, 2, 24).reshape(4, 6), np.linspace(0.5, 1.5, 6), np.linspace(-0.2, 0.3, 6)))
        g = seed.copy()
        _residual(impl, x, w, b, tt.tensor(0.7, dtype=np.float64)).backward(g)
        np.testing.assert_array_equal(g, seed)          # the add's gradient (also layer norm's input) unchanged
        grads[impl] = (x.grad, w.grad, b.grad)
    for got, want in zip(grads[F], grads[R]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert len(given_away) == 1 and grads[F][0] is given_away[0]     # summed in place, no new array


def test_a_given_array_that_arrives_first_takes_later_sums():
    """x feeds layer norm, and twice a product: whichever order the walk meets them, the sum is right."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((3, 5))
    grads = []
    for impl in (F, R):
        x = tt.tensor(data, dtype=np.float64, requires_grad=True)
        h = x * 2.0
        (impl.layer_norm(h, None, None) * 3.0 + h * h + h).sum().backward()
        grads.append(x.grad)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_rms_norm_gives_its_input_gradient_away_too(given_away):
    """Llama's and Qwen's residual stream: x + scale * rms_norm(x), the same in-place sum as layer norm's."""
    rng = np.random.default_rng(2)
    seed = rng.standard_normal((4, 6))
    grads = {}
    for impl in (F, R):
        x, w = (tt.tensor(a, dtype=np.float64, requires_grad=True) for a in
                (np.linspace(-1, 2, 24).reshape(4, 6), np.linspace(0.5, 1.5, 6)))
        g = seed.copy()
        (x + impl.rms_norm(x, w) * tt.tensor(0.7, dtype=np.float64)).backward(g)
        np.testing.assert_array_equal(g, seed)          # the add's gradient unchanged
        grads[impl] = (x.grad, w.grad)
    for got, want in zip(grads[F], grads[R]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert len(given_away) == 1 and np.shares_memory(grads[F][0], given_away[0])   # summed in place
