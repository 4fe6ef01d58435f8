"""A dense layer as one op, y = x W^T + b, with its hand-written backward.

Its composed twin: ``reference.linear`` (a matmul and an add). Batch axes are folded into rows, so x is
(N, in); the schedule (schedule/linear.py) shares the rows (or the two backward products) over the threads.

The plain rung, at the top of this file: ``plain_linear`` and ``plain_linear_backward``
(``reference.PLAIN["linear"]``): NumPy in and out, the backward written by hand from the formulas.
"""
from .. import amp, backend, config, twins as reference
from ..schedule import linear as schedule
from ..tensor import Tensor

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_linear(x, w, b):
    """y = x W^T + b: x (..., in), W (out, in), b (out,)."""
    return x @ w.T + b, (x, w)


def plain_linear_backward(g, cache):
    """dx = g W; dW = g^T x and db = 1^T g over all rows (batch axes folded into rows)."""
    x, w = cache
    g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    return g @ w, g2.T @ x2, g2.sum(axis=0)


# ----- the math, on a block of rows x (N, in), W (out, in), b (out,) -----


def _forward_rows(x, w, b, y):
    """y = x W^T + b."""
    backend.xp_of(x).matmul(x, w.T, out=y)
    if b is not None:
        y += b                                          # while the block is still in cache


def _input_grad(g, w, dx):
    """dx = g W  (dy/dx = W)."""
    backend.xp_of(g).matmul(g, w, out=dx)


def _weight_grads(g, x, dw, db, ones):
    """dW = g^T x (dy/dW: each row's outer product g x^T, summed) and db = 1^T g (dy/db = 1), for a block
    of output features (g's columns); either may be None. The column sums of db as one BLAS product."""
    xp = backend.xp_of(g)
    if dw is not None:
        xp.matmul(g.T, x, out=dw)
    if db is not None:
        xp.matmul(ones, g, out=db)


# ----- the op -----

def linear(x, weight, bias=None):
    """x (..., in) times weight (out, in) transposed, plus bias (out,) -> (..., out)."""
    x, weight, bias = amp.low("linear", x, weight, bias)      # 16-bit inside tt.autocast
    out_f, in_f = weight.shape
    if x.shape[-1] != in_f:
        raise ValueError(f"linear: input of shape {x.shape} has {x.shape[-1]} features, weight {weight.shape} expects {in_f}")
    if bias is not None and tuple(bias.shape) != (out_f,):
        raise ValueError(f"linear: bias of shape {bias.shape}, expected ({out_f},)")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise TypeError(f"linear: input is {x.dtype}, weight {weight.dtype}"
                        + (f", bias {bias.dtype}" if bias is not None else "") + "; they must match")
    if x.device != weight.device:
        raise RuntimeError(f"linear: input on {x.device}, weight on {weight.device}; move one with .to()")
    if bias is not None and bias.device != weight.device:
        raise RuntimeError(f"linear: weight on {weight.device}, bias on {bias.device} (different devices); "
                           "move one with .to()")
    if config.reference_ops:
        return reference.linear(x, weight, bias)
    w = weight.data
    b = bias.data if bias is not None else None
    x2 = x.data.reshape(-1, in_f)                       # (N, in)
    y = schedule.forward(_forward_rows, x2, w, b)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        want = (x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
        dx, dw, db = schedule.backward(_input_grad, _weight_grads, g.reshape(-1, out_f), x2, w, b, *want)
        grads = (dx.reshape(x.shape) if dx is not None else None, dw)
        return grads + (db,) if bias is not None else grads
    return Tensor._make(y.reshape(x.shape[:-1] + (out_f,)), parents, backward, "linear",
                        twin=lambda: reference.linear(x, weight, bias))
