"""Automatic mixed precision: ``with tt.autocast(dtype="bfloat16"): ...`` runs the matrix products in 16 bits.

In the spirit of ``torch.autocast`` and llm.c. The parameters stay float32 (the "master weights", and
AdamW's moments with them); inside the block each op decides the dtype it computes in:

    low precision (bfloat16 / float16)   linear, matmul, scaled_dot_product_attention: their float32
                                         inputs are cast down first; the result is 16-bit
    float32                              layer_norm, rms_norm, cross_entropy, softmax, log_softmax: 16-bit inputs
                                         are cast up first, so statistics and the loss are float32
    as they come                         everything else (gelu, dropout, reshapes, ...); a binary op
                                         mixing a 16-bit and a wider float runs in the wider one

Every cast is an op in the graph (``cast``, named "autocast_cast") whose backward casts the gradient back to the input's
dtype, so the gradient reaching a float32 parameter is float32. Attention takes 16-bit q, k, v and
gives a 16-bit result, but its softmax runs in float32: on the GPU inside the flash kernel when it is
switched on, elsewhere by running the float32 op on the inputs cast up.

float16's range is small (largest 65504, smallest normal 6e-5): train it with ``tt.GradScaler`` (loss
scaling, grad_scaler.py). bfloat16 has float32's range but NumPy has no bfloat16, so it needs "cuda"
(CuPy 14+ with the ml_dtypes package); on the CPU, float16 autocast runs everywhere (slowly: NumPy
has no fast 16-bit products) and is how CI tests these rules.

Each thread has its own setting, as with ``tt.no_grad()``.
"""
import contextlib
import functools
import threading

import numpy as np

from . import backend
from .tensor import Tensor

DTYPES = ("bfloat16", "float16")
LOW_OPS = ("linear", "matmul", "scaled_dot_product_attention")
FLOAT32_OPS = ("layer_norm", "rms_norm", "cross_entropy", "softmax", "log_softmax")

_state = threading.local()


def _check_name(dtype):
    """"bfloat16" or "float16" from a name or a NumPy float16 dtype; a ValueError otherwise."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    try:
        if np.dtype(dtype) == np.float16:
            return "float16"
    except TypeError:
        pass
    if str(dtype) == "bfloat16":                     # ml_dtypes.bfloat16 itself
        return "bfloat16"
    raise ValueError(f"autocast: dtype must be 'bfloat16' or 'float16', not {dtype!r}")


class autocast(contextlib.ContextDecorator):
    """``with tt.autocast(dtype="bfloat16"): loss = ...``: the forward (and the loss) in mixed precision.

    ``dtype``: "bfloat16" (needs "cuda") or "float16" (use with ``tt.GradScaler``). ``enabled=False``
    makes it a no-op, so one code path serves every precision. Run ``backward()`` after the block, as
    with torch.autocast: the backward of each op runs in the dtype its forward chose. Nests; also a
    decorator."""

    def __init__(self, dtype="bfloat16", enabled=True):
        self.dtype = _check_name(dtype)
        self.enabled = bool(enabled)

    def __enter__(self):
        stack = _stack()
        stack.append(self.dtype if self.enabled else None)
        return self

    def __exit__(self, *exc):
        _stack().pop()
        return False


def _stack():
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def current():
    """The autocast dtype name in force on this thread ("bfloat16", "float16"), or None."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


def is_active():
    """True inside an enabled ``tt.autocast`` block on this thread."""
    return current() is not None


@contextlib.contextmanager
def suspended():
    """Autocast off inside (an op that already cast its inputs runs its plain self)."""
    stack = _stack()
    stack.append(None)
    try:
        yield
    finally:
        stack.pop()


@functools.lru_cache(maxsize=None)
def bfloat16_dtype():
    """NumPy's dtype for bfloat16 from the ml_dtypes package (CuPy 14+ computes with it), or a RuntimeError."""
    try:
        import ml_dtypes
    except ImportError:
        raise RuntimeError("bfloat16 needs the ml_dtypes package (pip install ml_dtypes) and CuPy 14 or newer; "
                           "or use autocast(dtype='float16') with tt.GradScaler") from None
    return np.dtype(ml_dtypes.bfloat16)


def low_dtype(name, xp):
    """The array dtype of the autocast ``name`` for data of array module ``xp``."""
    if name == "float16":
        return np.dtype(np.float16)
    if xp is np:
        raise RuntimeError("autocast(dtype='bfloat16') on the CPU: NumPy has no bfloat16 arithmetic; move the "
                           "model to 'cuda', or use dtype='float16' on the CPU (slow, but the same rules)")
    return bfloat16_dtype()


def is_low(dtype):
    """True for the 16-bit float dtypes autocast computes in (float16, bfloat16)."""
    return dtype == np.float16 or str(dtype) == "bfloat16"


def cast(x, dtype):
    """``x`` as ``dtype``, recorded in the graph: the gradient goes back cast to ``x``'s dtype."""
    if x.dtype == dtype:
        return x
    source = x.dtype

    def backward(g):  # d cast(x)/dx = 1: only the dtype changes back (float32 for a master weight)
        return (g.astype(source),)
    return Tensor._make(x.data.astype(dtype), (x,), backward, "autocast_cast", vjp=backward)


def low(op, *tensors):
    """The inputs of a low-precision ``op`` (LOW_OPS) under autocast: float32 ones cast down; None stays.
    Outside autocast the tensors come back as they are."""
    name = current()
    if name is None:
        return tensors
    out = []
    for t in tensors:
        if isinstance(t, Tensor) and t.dtype == np.float32:
            t = cast(t, low_dtype(name, backend.xp_of(t.data)))
        out.append(t)
    return tuple(out)


def high(op, *tensors):
    """The inputs of a float32 ``op`` (FLOAT32_OPS) under autocast: 16-bit ones cast up to float32."""
    if current() is None:
        return tensors
    return tuple(cast(t, np.dtype(np.float32)) if isinstance(t, Tensor) and is_low(t.dtype) else t for t in tensors)


def promote(a, b):
    """Under autocast, a binary op's operands with a 16-bit float beside a wider float: the 16-bit one cast
    to the other's dtype (as PyTorch's type promotion does). Anything else comes back unchanged."""
    if current() is None or a.dtype == b.dtype:
        return a, b
    if is_low(a.dtype) and b.dtype.kind == "f" and not is_low(b.dtype):
        return cast(a, b.dtype), b
    if is_low(b.dtype) and a.dtype.kind == "f" and not is_low(a.dtype):
        return a, cast(b, a.dtype)
    return a, b


def attention(op, q, k, v, causal, dropout_p, training, native=None):
    """scaled_dot_product_attention under autocast: 16-bit result, float32 softmax.

    ``native(q, k, v)`` says whether the op can take 16-bit q, k, v itself with its softmax in float32
    (the GPU flash kernel); then they are passed cast down. Otherwise the op runs in float32 on the inputs
    cast up, and its result is cast down: the same numbers a float32-softmax kernel gives, to rounding."""
    if not all(t.dtype == np.float32 or is_low(t.dtype) for t in (q, k, v)):
        with suspended():                            # float64 (gradcheck) is left alone
            return op(q, k, v, causal, dropout_p, training)
    lowt = low_dtype(current(), backend.xp_of(q.data))
    q16, k16, v16 = (cast(t, lowt) if t.dtype == np.float32 else t for t in (q, k, v))
    with suspended():
        if native is not None and native(q16, k16, v16):
            return op(q16, k16, v16, causal, dropout_p, training)
        q32, k32, v32 = (cast(t, np.dtype(np.float32)) for t in (q16, k16, v16))
        return cast(op(q32, k32, v32, causal, dropout_p, training), lowt)
