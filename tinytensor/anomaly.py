"""``tt.detect_anomaly()``: stop at the first op whose forward or backward makes a NaN or an Inf, or whose
backward would read an array that was written into after the op ran."""
import zlib

import numpy as np

from . import backend
from .tensor import _backward_hooks, _hooks
from .versions import read_by_backward


class AnomalyError(FloatingPointError):
    """An op produced NaN or Inf from finite inputs (or finite incoming gradients)."""


def _finite(array):
    if array is None or array.dtype.kind != "f":
        return True
    return bool(backend.xp_of(array).isfinite(array).all())


def _describe(parents):
    return ", ".join(str(tuple(p.shape)) for p in parents) or "none"


def _fingerprint(array):
    """CRC-32 of the array's bytes: a write that changes them changes it (but for 1 chance in 2**32)."""
    return zlib.crc32(np.ascontiguousarray(backend.to_numpy(array)))


def _check_forward(out, op, parents):
    if not _finite(out.data) and all(_finite(p.data) for p in parents):
        raise AnomalyError(f"detect_anomaly: forward of '{op}' produced NaN or Inf "
                           f"(input shapes: {_describe(parents)}; output shape {tuple(out.shape)})")
    if out.requires_grad:
        out._fingerprints = {id(t): _fingerprint(t.data) for t in parents + (out,)}


def _check_backward(node, grad_out, input_grads):
    prints = getattr(node, "_fingerprints", None)       # None: the forward ran outside detect_anomaly
    for t in read_by_backward(node) if prints else ():
        if id(t) in prints and _fingerprint(t.data) != prints[id(t)]:
            what = "its result" if t is node else "an input"
            raise RuntimeError(f"backward of '{node._op}': {what} of shape {tuple(t.shape)} was written into "
                               "after the op used it (found by detect_anomaly); compute again from the "
                               "changed values (or change a copy)")
    if not _finite(grad_out):
        return
    for i, g in enumerate(input_grads):
        if g is not None and not _finite(g):
            raise AnomalyError(f"detect_anomaly: backward of '{node._op}' produced NaN or Inf in the gradient "
                               f"of input {i} (input shapes: {_describe(node._parents)})")


class detect_anomaly:
    """Context manager: raise ``AnomalyError`` naming the op and its input shapes at the first op whose
    forward output, or whose backward gradients, hold NaN or Inf although what went in was finite; and
    raise ``RuntimeError`` when an op's backward would read an input or result whose array was written
    into after the op ran (``x.data[:] = 0`` included: see ``Tensor.data``).

    It checks (and fingerprints) every array, so it is slow: use it to find a problem, not in normal
    training.
    """

    def __enter__(self):
        _hooks.append(_check_forward)
        _backward_hooks.append(_check_backward)
        return self

    def __exit__(self, *exc):
        _hooks.remove(_check_forward)
        _backward_hooks.remove(_check_backward)
