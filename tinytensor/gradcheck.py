"""Check an op's backward against central finite differences, in float64.

For f with output y and a fixed random weighting r, the analytic gradient of sum(y * r) from
``backward`` must match (sum(f(x + eps) * r) - sum(f(x - eps) * r)) / (2 eps) for every element of every
input that requires grad.
"""
import numpy as np

from . import backend
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """A backward disagrees with finite differences; the message names input, element and both values."""


def _as_float64_inputs(inputs):
    out = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            out.append(Tensor._plain(x.data.astype(np.float64), x.requires_grad))
        else:
            out.append(x)
    return out


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Return True if ``fn``'s gradients match central differences, else raise ``GradcheckError``.

    ``fn`` takes the inputs and returns a Tensor. Float inputs are copied to float64 first; only those
    with ``requires_grad=True`` are checked. The inputs themselves are never changed.
    """
    inputs = _as_float64_inputs(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    xp = backend.xp_of(out.data)
    weights = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))

    def weighted(values):
        return float((values.data.astype(np.float64) * weights).sum())

    for i in checked:
        inputs[i].grad = None
    if out.requires_grad:
        out.backward(weights.astype(out.dtype))
    for i in checked:
        x = inputs[i]
        analytic = backend.to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        if analytic.shape != x.shape:
            raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}) got a gradient of shape {analytic.shape}")
        flat = x.data.reshape(-1)    # a view: nudging it nudges x
        for j in range(flat.size):
            original = flat[j].item()
            with no_grad():
                flat[j] = original + eps
                plus = weighted(fn(*inputs))
                flat[j] = original - eps
                minus = weighted(fn(*inputs))
                flat[j] = original
            numeric = (plus - minus) / (2 * eps)
            a = float(analytic.reshape(-1)[j])
            if not abs(a - numeric) <= atol + rtol * abs(numeric):
                index = np.unravel_index(j, x.shape) if x.ndim else ()
                raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}), element {tuple(int(k) for k in index)}: "
                                     f"analytic {a:.6g} vs numeric {numeric:.6g}")
    return True
