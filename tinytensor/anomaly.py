"""``tt.detect_anomaly()``: stop at the first op whose forward or backward makes a NaN or an Inf."""
from . import backend
from .tensor import _backward_hooks, _hooks


class AnomalyError(FloatingPointError):
    """An op produced NaN or Inf from finite inputs (or finite incoming gradients)."""


def _finite(array):
    if array is None or array.dtype.kind != "f":
        return True
    return bool(backend.xp_of(array).isfinite(array).all())


def _describe(parents):
    return ", ".join(str(tuple(p.shape)) for p in parents) or "none"


def _check_forward(out, op, parents):
    if not _finite(out.data) and all(_finite(p.data) for p in parents):
        raise AnomalyError(f"detect_anomaly: forward of '{op}' produced NaN or Inf "
                           f"(input shapes: {_describe(parents)}; output shape {tuple(out.shape)})")


def _check_backward(node, grad_out, input_grads):
    if not _finite(grad_out):
        return
    for i, g in enumerate(input_grads):
        if g is not None and not _finite(g):
            raise AnomalyError(f"detect_anomaly: backward of '{node._op}' produced NaN or Inf in the gradient "
                               f"of input {i} (input shapes: {_describe(node._parents)})")


class detect_anomaly:
    """Context manager: raise ``AnomalyError`` naming the op and its input shapes at the first op whose
    forward output, or whose backward gradients, hold NaN or Inf although what went in was finite.

    It checks every array, so it is slow: use it to find a problem, not in normal training.
    """

    def __enter__(self):
        _hooks.append(_check_forward)
        _backward_hooks.append(_check_backward)
        return self

    def __exit__(self, *exc):
        _hooks.remove(_check_forward)
        _backward_hooks.remove(_check_backward)
