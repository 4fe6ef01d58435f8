"""Elementwise ops: arithmetic with broadcasting, and the unary functions.

Each backward receives ``g`` = dL/d(out) and returns dL/d(input) for each input, in order. Inputs that
were broadcast get their gradient summed back with ``unbroadcast``.
"""
import numpy as np

from .. import backend
from ..tensor import Tensor
from .common import broadcast_shape, operands, unbroadcast


def _binary(a, b, name):
    a, b = operands(a, b, name)
    if a.shape != b.shape:
        broadcast_shape(a, b, name)
    return a, b


def add(a, b):
    a, b = _binary(a, b, "add")

    def backward(g):  # d(a+b)/da = 1, d(a+b)/db = 1
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)
    return Tensor._make(a.data + b.data, (a, b), backward, "add", vjp=backward)


def sub(a, b):
    a, b = _binary(a, b, "sub")

    def backward(g):  # d(a-b)/da = 1, d(a-b)/db = -1
        return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)
    return Tensor._make(a.data - b.data, (a, b), backward, "sub", vjp=backward)


def mul(a, b):
    a, b = _binary(a, b, "mul")

    def backward(g):  # d(ab)/da = b, d(ab)/db = a
        return (unbroadcast(g * b.data, a.shape) if a.requires_grad else None,
                unbroadcast(g * a.data, b.shape) if b.requires_grad else None)

    def vjp(g):  # the same in Tensor ops (what create_graph=True records)
        return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)
    return Tensor._make(a.data * b.data, (a, b), backward, "mul", vjp)


def div(a, b):
    a, b = _binary(a, b, "div")
    if a.dtype.kind != "f":
        a, b = Tensor._plain(a.data.astype(np.float32)), Tensor._plain(b.data.astype(np.float32))

    def backward(g):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        ga = unbroadcast(g / b.data, a.shape) if a.requires_grad else None
        gb = unbroadcast(-g * a.data / (b.data * b.data), b.shape) if b.requires_grad else None
        return ga, gb

    def vjp(g):
        return unbroadcast(g / b, a.shape), unbroadcast(-g * a / (b * b), b.shape)
    return Tensor._make(a.data / b.data, (a, b), backward, "div", vjp)


def pow(a, b):
    """``a ** b``. With a constant exponent only ``a`` gets a gradient; with a tensor both do (needs a > 0)."""
    a, b = _binary(a, b, "pow")
    out = a.data ** b.data

    def backward(g):  # d(a^b)/da = b a^(b-1), d(a^b)/db = a^b log(a)
        xp = backend.xp_of(g)
        ga = unbroadcast(g * b.data * a.data ** (b.data - 1), a.shape) if a.requires_grad else None
        gb = None
        if b.requires_grad:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = unbroadcast(g * out * xp.log(xp.where(a.data > 0, a.data, 1)), b.shape)
        return ga, gb

    def vjp(g):
        ga = unbroadcast(g * b * a ** (b - 1), a.shape)
        gb = unbroadcast(g * a ** b * log(where(a > 0, a, 1)), b.shape) if b.requires_grad else None
        return ga, gb
    return Tensor._make(out, (a, b), backward, "pow", vjp)


def neg(x):
    def backward(g):  # d(-x)/dx = -1
        return (-g,)
    return Tensor._make(-x.data, (x,), backward, "neg", vjp=backward)


def exp(x):
    out = backend.xp_of(x.data).exp(x.data)

    def backward(g):  # d/dx e^x = e^x
        return (g * out,)
    return Tensor._make(out, (x,), backward, "exp", vjp=lambda g: (g * exp(x),))


def log(x):
    def backward(g):  # d/dx log(x) = 1/x
        return (g / x.data,)
    return Tensor._make(backend.xp_of(x.data).log(x.data), (x,), backward, "log", vjp=lambda g: (g / x,))


def tanh(x):
    out = backend.xp_of(x.data).tanh(x.data)

    def backward(g):  # d/dx tanh(x) = 1 - tanh(x)^2
        return (g * (1 - out * out),)

    def vjp(g):
        y = tanh(x)
        return (g * (1 - y * y),)
    return Tensor._make(out, (x,), backward, "tanh", vjp)


def sqrt(x):
    out = backend.xp_of(x.data).sqrt(x.data)

    def backward(g):  # d/dx sqrt(x) = 1 / (2 sqrt(x))
        return (g / (2 * out),)
    return Tensor._make(out, (x,), backward, "sqrt", vjp=lambda g: (g / (2 * sqrt(x)),))


def relu(x):
    """max(x, 0). At x = 0 the gradient is 0 (PyTorch's convention)."""
    out = backend.xp_of(x.data).maximum(x.data, 0)

    def backward(g):  # d/dx relu(x) = 1 if x > 0 else 0
        return (g * (x.data > 0),)
    return Tensor._make(out, (x,), backward, "relu", vjp=backward)     # (x > 0: a constant)


def sigmoid(x):
    xp = backend.xp_of(x.data)
    # 1 / (1 + e^-x) written so that neither branch overflows
    e = xp.exp(-xp.abs(x.data))
    out = xp.where(x.data >= 0, 1 / (1 + e), e / (1 + e))

    def backward(g):  # d/dx sigmoid(x) = s (1 - s)
        return (g * out * (1 - out),)

    def vjp(g):
        s = sigmoid(x)
        return (g * s * (1 - s),)
    return Tensor._make(out, (x,), backward, "sigmoid", vjp)


def abs(x):
    """|x|. At x = 0 the gradient is 0 (sign(0) = 0, PyTorch's convention)."""
    xp = backend.xp_of(x.data)

    def backward(g):  # d/dx |x| = sign(x)
        return (g * xp.sign(x.data),)
    return Tensor._make(xp.abs(x.data), (x,), backward, "abs", vjp=backward)   # (sign(x): a constant)


def astype(x, dtype):
    """A copy of ``x`` with another dtype; the gradient is cast back to ``x``'s dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f" and x.requires_grad:
        return Tensor._plain(x.data.astype(dtype))

    def backward(g):
        return (g.astype(x.dtype),)
    return Tensor._make(x.data.astype(dtype), (x,), backward, "astype", vjp=backward)


def to_device(x, device):
    """A copy of ``x`` on ``device``; the gradient travels back to where ``x`` lives."""
    device = backend.check_device(device)
    if device == x.device:
        return x

    def backward(g):
        return (backend.to_device(g, x.device),)
    return Tensor._make(backend.to_device(x.data, device), (x,), backward, "to", vjp=lambda g: (g.to(x.device),))


def compare(a, b, op):
    """Elementwise comparison; returns a bool tensor with no gradient."""
    a, b = _binary(a, b, op.__name__)
    return Tensor._plain(op(a.data, b.data))


def where(cond, a, b):
    """``a`` where ``cond`` is true, else ``b`` (broadcasting all three)."""
    cond_data = cond.data if isinstance(cond, Tensor) else cond
    a, b = _binary(a, b, "where")
    xp = backend.xp_of(a.data)
    cond_data = xp.asarray(cond_data, dtype=bool)
    try:
        np.broadcast_shapes(cond_data.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: condition of shape {cond_data.shape} and inputs of shapes {a.shape} and "
                         f"{b.shape} cannot be broadcast together") from None
    out = xp.where(cond_data, a.data, b.data)

    def backward(g):  # the gradient flows to whichever input was picked
        zero = xp.zeros((), dtype=g.dtype)
        return (unbroadcast(xp.where(cond_data, g, zero), a.shape) if a.requires_grad else None,
                unbroadcast(xp.where(cond_data, zero, g), b.shape) if b.requires_grad else None)

    def vjp(g):
        return unbroadcast(where(cond_data, g, 0), a.shape), unbroadcast(where(cond_data, 0, g), b.shape)
    return Tensor._make(out, (a, b), backward, "where", vjp)


def masked_fill(x, mask, value):
    """``x`` with ``value`` where ``mask`` is true (``mask`` broadcasts to ``x``'s shape)."""
    xp = backend.xp_of(x.data)
    mask_data = xp.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool)
    try:
        np.broadcast_shapes(mask_data.shape, x.shape)
    except ValueError:
        raise ValueError(f"masked_fill: mask of shape {mask_data.shape} does not broadcast to {x.shape}") from None
    out = xp.where(mask_data, xp.asarray(value, dtype=x.dtype), x.data)
    if out.shape != x.shape:
        raise ValueError(f"masked_fill: mask of shape {mask_data.shape} would grow x of shape {x.shape}")

    def backward(g):  # filled positions are constants: no gradient
        return (xp.where(mask_data, xp.zeros((), dtype=g.dtype), g),)
    return Tensor._make(out, (x,), backward, "masked_fill", vjp=lambda g: (masked_fill(g, mask_data, 0),))

