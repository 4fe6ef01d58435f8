"""SiLU and SwiGLU, the feed-forward activation of Llama and Qwen, fused with their derivatives.

Their composed twins: ``reference.silu`` and ``reference.swiglu``. With s = sigmoid(x) = 1 / (1 + e^-x):

    silu(x)          = x s                      d/dx silu = s + x s (1 - s) = s (1 + x (1 - s))
    swiglu(gate, up) = silu(gate) up            d/dgate = up s (1 + gate (1 - s)),   d/dup = silu(gate)

GPT-2's MLP is proj(gelu(fc(x))); Llama's is proj(silu(gate(x)) * up(x)): a second projection "up"
decides, feature by feature, how much of the activated "gate" passes. ``swiglu(h)`` with one tensor
takes gate and up as the two halves of h's last axis, so a model can make both with one matrix product.

The plain rung, at the top of this file: ``plain_swiglu`` and ``plain_swiglu_backward``
(``reference.PLAIN["swiglu"]``): NumPy in and out, the backward written by hand from the formulas.
"""
import contextlib

import numpy as np

from .. import backend, config, twins as reference
from ..schedule import elementwise as schedule
from ..tensor import Tensor
from .common import floating, same_device

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_swiglu(gate, up):
    """swiglu(gate, up) = silu(gate) up = gate s up, with s = sigmoid(gate) = 1 / (1 + e^-gate)."""
    s = 1 / (1 + np.exp(-gate))
    return gate * s * up, (gate, up, s)


def plain_swiglu_backward(g, cache):
    """d/dgate = up s (1 + gate (1 - s)),  d/dup = silu(gate) = gate s."""
    gate, up, s = cache
    return g * up * s * (1 + gate * (1 - s)), g * gate * s


# ----- the math, elementwise (s keeps sigmoid(gate) for backward) -----


def _sigmoid(x, s):
    """s = 1 / (1 + e^-x); e^-x overflowing to inf for x < -88 (float32) correctly gives 0."""
    xp = backend.xp_of(x)
    with np.errstate(over="ignore") if xp is np else contextlib.nullcontext():
        xp.negative(x, out=s)
        xp.exp(s, out=s)
    s += 1
    xp.reciprocal(s, out=s)


def _swiglu_forward(gate, up, s, out):
    """out = gate s up (up None: silu alone)."""
    _sigmoid(gate, s)
    backend.xp_of(gate).multiply(gate, s, out=out)
    if up is not None:
        out *= up


def _swiglu_backward(g, gate, up, s, dgate, dup):
    """dgate = g up s (1 + gate (1 - s)); dup = g gate s (up None: silu's derivative alone)."""
    xp = backend.xp_of(g)
    if dup is not None:
        xp.multiply(gate, s, out=dup)                   # silu(gate)
        dup *= g
    xp.subtract(1, s, out=dgate)
    dgate *= gate
    dgate += 1
    dgate *= s
    dgate *= g
    if up is not None:
        dgate *= up


# ----- the ops (their schedule, row blocks of the arrays shared over the threads: schedule/elementwise.py) -----

def silu(x):
    """x sigmoid(x) (also called swish)."""
    floating("silu", x)
    if config.reference_ops:
        return reference.silu(x)
    xp = backend.xp_of(x.data)
    d = x.data
    s, out = (xp.empty(d.shape, dtype=d.dtype) for _ in range(2))     # s: sigmoid(x), kept for backward
    # (outputs in row order whatever the input's layout: the row views below must be views, not copies)
    schedule.in_row_blocks(lambda xb, sb, ob: _swiglu_forward(xb, None, sb, ob), d, s, out)

    def backward(g):
        dx = xp.empty(d.shape, dtype=d.dtype)
        schedule.in_row_blocks(lambda gb, xb, sb, db: _swiglu_backward(gb, xb, None, sb, db, None), g, d, s, dx)
        return (dx,)
    return Tensor._make(out, (x,), backward, "silu", twin=lambda: reference.silu(x))


def swiglu(gate, up=None):
    """silu(gate) * up. With ``up`` None, ``gate`` holds both: its last axis is [gate, up] (even length)."""
    if up is None:
        n = gate.shape[-1] if gate.ndim else 1
        if n % 2:
            raise ValueError(f"swiglu: one input holds gate and up as the halves of its last axis, which must "
                             f"have an even length; got shape {gate.shape}")
    else:
        if gate.shape != up.shape:
            raise ValueError(f"swiglu: gate {gate.shape} and up {up.shape} must have the same shape")
        if gate.dtype != up.dtype:
            raise TypeError(f"swiglu: gate is {gate.dtype} but up is {up.dtype}; convert one with .astype()")
        same_device("swiglu", gate, up)
    if config.reference_ops:
        return reference.swiglu(gate, up)
    xp = backend.xp_of(gate.data)
    if up is None:
        h = gate.shape[-1] // 2
        g_arr, u_arr = gate.data[..., :h], gate.data[..., h:]
        parents = (gate,)
    else:
        g_arr, u_arr = gate.data, up.data
        parents = (gate, up)
    s = xp.empty(g_arr.shape, dtype=g_arr.dtype)
    out = xp.empty(g_arr.shape, dtype=g_arr.dtype)
    # the schedule: row blocks over the threads (the halves of a (rows, 2H) array are (rows, H) views)
    schedule.in_row_blocks(_swiglu_forward, g_arr, u_arr, s, out)

    def backward(g):
        if up is None:                                  # one gradient array, its halves for gate and up
            grad = xp.empty(gate.shape, dtype=g_arr.dtype)
            dgate, dup = grad[..., :h], grad[..., h:]
        else:
            grad = None
            dgate = xp.empty(g_arr.shape, dtype=g_arr.dtype)
            dup = xp.empty(u_arr.shape, dtype=u_arr.dtype) if up.requires_grad else None
        if dup is None:
            schedule.in_row_blocks(lambda *b: _swiglu_backward(*b, None), g, g_arr, u_arr, s, dgate)
        else:
            schedule.in_row_blocks(_swiglu_backward, g, g_arr, u_arr, s, dgate, dup)
        return (grad,) if up is None else (dgate, dup)
    return Tensor._make(out, parents, backward, "swiglu", twin=lambda: reference.swiglu(gate, up))
