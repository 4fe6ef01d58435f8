"""Cross-entropy fused with log-softmax: the loss of a language model over its whole vocabulary.

Its composed twin: ``reference.cross_entropy`` (log-softmax, then the target's entry). Per row i of the
logits x (N, C), with target t_i, m_i = max_j x_ij and lse_i = log sum_j exp(x_ij - m_i):

    loss_i = lse_i - (x_it - m_i)                        (= -log softmax(x_i)[t_i])
    d loss_i / d x_ij = softmax_ij - [j == t_i]          softmax_ij = exp(x_ij - m_i) / sum_e_i

with sum_e_i = sum_j exp(x_ij - m_i) = exp(lse_i). Both are taken from the shifted values: lse - x_t would
round log C away beside a large max (float32 logits of 1e4). No (N, C) array is made in the forward; the
backward recomputes the softmax.

The plain rung, at the top of this file: ``plain_cross_entropy`` and ``plain_cross_entropy_backward``
(``reference.PLAIN["cross_entropy"]``): NumPy in and out, the backward written by hand from the formulas.
"""
import numpy as np

from .. import amp, backend, config, twins as reference
from ..cuda import kernels as cuda_kernels
from ..schedule import loss as schedule
from ..tensor import Tensor
from .common import floating

# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """loss_i = lse_i - (x_it - m_i) per row of x = logits (N, C) or (B, T, C), then "mean" over the rows
    kept (target not ``ignore_index``), "sum", or "none" (one loss per row)."""
    C = logits.shape[-1]
    x, t = logits.reshape(-1, C), np.asarray(targets).reshape(-1)              # (N, C), (N,)
    keep = t != ignore_index
    t = np.where(keep, t, 0)
    m = x.max(axis=1, keepdims=True)                                            # (N, 1)
    lse = np.log(np.exp(x - m).sum(axis=1))                                     # (N,)
    losses = (lse - (x[np.arange(len(t)), t] - m[:, 0])) * keep
    count = int(keep.sum())
    out = {"none": losses.reshape(logits.shape[:-1]), "sum": losses.sum(),
           "mean": losses.sum() / x.dtype.type(count) if count else x.dtype.type(np.nan)}[reduction]
    return out, (x, m, lse, t, keep, count, reduction, logits.shape)


def plain_cross_entropy_backward(g, cache):
    """d loss_i / d x_ij = softmax_ij - [j == t_i], times row i's share of g (g / count for "mean")."""
    x, m, lse, t, keep, count, reduction, shape = cache
    scale = keep * (g.reshape(-1) if reduction == "none" else g / max(count, 1) if reduction == "mean" else g)
    dx = np.exp(x - m - lse[:, None])                                           # softmax (N, C)
    dx[np.arange(len(t)), t] -= 1
    return ((dx * scale[:, None]).reshape(shape),)


# ----- the math, on a block of rows -----


def _row_stats(x, m, sum_e):
    """m = max_j x_ij (N, 1) and sum_e = sum_j exp(x_ij - m_i) (N,), whose log is lse."""
    xp = backend.xp_of(x)
    xp.max(x, axis=1, keepdims=True, out=m)
    e = x - m
    xp.exp(e, out=e)
    xp.matmul(e, xp.ones(x.shape[1], dtype=x.dtype), out=sum_e)     # the row sums as one product


def _softmax_minus_onehot(x, m, sum_e, t, scale, grad):
    """grad = (softmax(x) - onehot(t)) scale[:, None]: d loss_i / d x_ij, times each row's weight, as
    exp(x - m) (scale / sum_e) - onehot(t) scale."""
    xp = backend.xp_of(x)
    xp.subtract(x, m, out=grad)
    xp.exp(grad, out=grad)
    grad *= (scale / sum_e)[:, None]
    grad[xp.arange(len(grad)), t] -= scale


# ----- the op -----

def _targets_array(targets, xp):
    data = targets.data if isinstance(targets, Tensor) else targets
    data = xp.asarray(data)
    if data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class ids, not {data.dtype} "
                        "(use .astype('int64') if they are whole numbers)")
    return data


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """Mean (or sum, or per-position) of -log softmax(logits)[target].

    ``logits`` is (N, C) or (B, T, C); ``targets`` holds class ids of shape (N,) or (B, T). Positions
    whose target equals ``ignore_index`` add nothing to the loss or the count. With ``reduction="mean"``
    and every position ignored the result is NaN, as in PyTorch.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    floating("cross_entropy", logits)
    (logits,) = amp.high("cross_entropy", logits)              # float32 inside tt.autocast
    xp = backend.xp_of(logits.data)
    t = _targets_array(targets, xp)
    if logits.ndim not in (2, 3) or t.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]} (logits (N, C) or (B, T, C)), got {t.shape}")
    C = logits.shape[-1]
    t = t.reshape(-1)                                    # (N,)
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= C))
    if bool(bad.any()):
        raise IndexError(f"cross_entropy: target id {int(t[bad][0])} is out of range for {C} classes")
    if config.reference_ops:
        return reference.cross_entropy(logits, targets, ignore_index, reduction)
    kernel = cuda_kernels.use(xp, "cross_entropy")      # on a GPU: both passes as fused kernels
    x = logits.data.reshape(-1, C)                       # (N, C)
    safe_t = xp.where(keep, t, 0)
    stats_kernel = kernel and x.dtype in (np.float32, np.float64) and x.size > 0
    m, lse, sum_e = schedule.stats(_row_stats, x, stats_kernel)
    losses = (lse - (x[xp.arange(x.shape[0]), safe_t] - m[:, 0])) * keep   # (N,)
    count = int(keep.sum())
    if reduction == "mean":
        out = losses.sum() / x.dtype.type(count) if count else xp.asarray(np.nan, dtype=x.dtype)
    elif reduction == "sum":
        out = losses.sum()
    else:
        out = losses.reshape(logits.shape[:-1])
    out = out.astype(x.dtype, copy=False)

    def backward(g):
        if reduction == "none":
            scale = g.reshape(-1) * keep
        else:
            scale = keep * (g / count if reduction == "mean" and count else g)
        if kernel:
            return (cuda_kernels.cross_entropy_backward(x, m, lse, safe_t, scale).reshape(logits.shape),)
        grad = xp.empty_like(x)                          # the softmax recomputed, block by block
        scale = scale.astype(x.dtype, copy=False)
        schedule.in_row_blocks(_softmax_minus_onehot, x, m, sum_e, safe_t, scale, grad)
        return (grad.reshape(logits.shape),)
    return Tensor._make(out, (logits,), backward, "cross_entropy",
                        twin=lambda: reference.cross_entropy(logits, targets, ignore_index, reduction))
