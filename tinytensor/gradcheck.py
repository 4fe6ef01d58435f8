"""Check an op's backward against central finite differences, in float64.

For f with output y and a fixed random weighting r, the analytic gradient of F = sum(y * r) from
``backward`` must match (F(x + eps) - F(x - eps)) / (2 eps) for every element of every input that
requires grad. ``fast=True`` checks a few random directions v per input instead of every element:
<grad F, v> against (F(x + eps v) - F(x - eps v)) / (2 eps), a cost independent of the input's size.
``gradgradcheck`` runs the same check on the gradients themselves (second derivatives).
"""
import numpy as np

from . import backend
from .autograd import grad
from .ops.shape import concatenate
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad


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


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, fast=False, directions=3):
    """Return True if ``fn``'s gradients match central differences, else raise ``GradcheckError``.

    ``fn`` takes the inputs and returns a Tensor. Float inputs are copied to float64 first; only those
    with ``requires_grad=True`` are checked. The inputs themselves are never changed. ``fast=True``
    compares ``directions`` random directional derivatives per input instead of every element (two
    calls of ``fn`` per direction, whatever the size: a 768x3072 layer in seconds).
    """
    inputs = _as_float64_inputs(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    xp = backend.xp_of(out.data)
    rng = np.random.default_rng(seed)
    weights = xp.asarray(rng.standard_normal(out.shape))

    def weighted(values):
        return float((values.data.astype(np.float64) * weights).sum())

    def numeric(x, direction):
        """(F(x + eps d) - F(x - eps d)) / (2 eps), ``x``'s data nudged in place and put back."""
        original = x.data.copy()
        with no_grad():
            x.data[...] = original + eps * direction
            plus = weighted(fn(*inputs))
            x.data[...] = original - eps * direction
            minus = weighted(fn(*inputs))
            x.data[...] = original
        return (plus - minus) / (2 * eps)

    for i in checked:
        inputs[i].grad = None
    if out.requires_grad:
        out.backward(weights.astype(out.dtype))
    for i in checked:
        x = inputs[i]
        analytic = backend.to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        if analytic.shape != x.shape:
            raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}) got a gradient of shape {analytic.shape}")
        if fast:
            for k in range(directions):
                v = rng.standard_normal(x.shape)
                v /= max(np.linalg.norm(v), 1e-300)
                a, n = float((analytic * v).sum()), numeric(x, xp.asarray(v))
                if not abs(a - n) <= atol + rtol * abs(n):
                    raise GradcheckError(f"gradcheck (fast): input {i} (shape {x.shape}), random direction {k}: "
                                         f"analytic {a:.6g} vs numeric {n:.6g}")
            continue
        for j in range(x.size):
            unit = np.zeros(x.size)
            unit[j] = 1.0
            n = numeric(x, xp.asarray(unit.reshape(x.shape)))
            a = float(analytic.reshape(-1)[j])
            if not abs(a - n) <= atol + rtol * abs(n):
                index = np.unravel_index(j, x.shape) if x.ndim else ()
                raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}), element {tuple(int(k) for k in index)}: "
                                     f"analytic {a:.6g} vs numeric {n:.6g}")
    return True


def gradgradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, fast=False, directions=3):
    """Return True if ``fn``'s second derivatives match finite differences of its first, else raise.

    The function checked is x -> grad(sum(fn(x) * r), x) for a fixed random r: its backward (recorded
    with ``create_graph=True``, each op's backward in Tensor ops, fused ops through their twins) against
    central differences of the plain first-order gradients. Arguments as ``gradcheck``'s."""
    inputs = _as_float64_inputs(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradgradcheck: no input has requires_grad=True, so there is nothing to check")
    with enable_grad():
        shape = fn(*inputs).shape
    r = np.random.default_rng(seed + 1).standard_normal(shape)

    def first_order(*xs):
        """All first-order gradients, flattened into one vector (zeros where an input is unused)."""
        record = is_grad_enabled()          # gradcheck's finite differences call this under no_grad
        with enable_grad():
            out = fn(*xs)
            wanted = [xs[i] for i in checked]
            if not out.requires_grad:
                return Tensor._plain(np.zeros(sum(x.size for x in wanted)))
            weights = Tensor._plain(backend.xp_of(out.data).asarray(r, dtype=out.dtype))
            grads = grad(out, wanted, weights, create_graph=record, allow_unused=True)
        return concatenate([(g if g is not None else x * 0).reshape(-1) for g, x in zip(grads, wanted)])
    return gradcheck(first_order, *inputs, eps=eps, atol=atol, rtol=rtol, seed=seed, fast=fast, directions=directions)
