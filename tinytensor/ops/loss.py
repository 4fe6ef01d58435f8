"""Cross-entropy fused with log-softmax: the loss of a language model over its whole vocabulary."""
import numpy as np

from .. import backend, cuda_kernels, parallel
from ..tensor import Tensor


def _targets_array(targets, xp):
    data = targets.data if isinstance(targets, Tensor) else targets
    data = xp.asarray(data)
    if data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class ids, not {data.dtype} "
                        "(use .astype('int64') if they are whole numbers)")
    return data


def _row_blocks(x):
    """Row ranges of about a megabyte each: every pass over a block then runs in the CPU's cache."""
    step = max(1, (1 << 18) // max(1, x.shape[1]))
    return [slice(i, i + step) for i in range(0, x.shape[0], step)]


def _row_stats(x, xp):
    """Per row: the max m (N, 1) and log(sum(exp(x - m))) (N,), in cache-sized blocks shared over the
    threads, so no (N, C) temporary is made."""
    if cuda_kernels.use(xp, "cross_entropy") and x.dtype in (np.float32, np.float64) and x.size:
        return cuda_kernels.row_max_lse(x)              # one GPU kernel, one read of the logits
    if xp is not np:
        m = x.max(axis=1, keepdims=True)
        return m, xp.log(xp.exp(x - m).sum(axis=1))
    m = np.empty((x.shape[0], 1), dtype=x.dtype)
    lse_m = np.empty(x.shape[0], dtype=x.dtype)

    def block(rows):
        xb, mb = x[rows], m[rows]
        np.max(xb, axis=1, keepdims=True, out=mb)
        e = xb - mb
        np.exp(e, out=e)
        np.sum(e, axis=1, out=lse_m[rows])
    parallel.run(block, _row_blocks(x))
    return m, np.log(lse_m, out=lse_m)


def _softmax_minus_onehot(x, m, lse_m, targets, scale, xp):
    """(softmax(x) - onehot(targets)) * scale[:, None] per row; softmax as exp((x - m) - lse_m), shifting
    first to keep float32 precise beside a large max. Block by block (shared over threads) on the CPU."""
    if xp is not np:
        grad = x - m
        grad -= lse_m[:, None]
        xp.exp(grad, out=grad)
        grad[xp.arange(x.shape[0]), targets] -= 1
        grad *= scale[:, None]
        return grad
    grad = np.empty_like(x)

    def block(rows):
        g = grad[rows]
        np.subtract(x[rows], m[rows], out=g)
        g -= lse_m[rows, None]
        np.exp(g, out=g)
        g[np.arange(len(g)), targets[rows]] -= 1
        g *= scale[rows, None]
    parallel.run(block, _row_blocks(x))
    return grad


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """Mean (or sum, or per-position) of -log softmax(logits)[target].

    ``logits`` is (N, C) or (B, T, C); ``targets`` holds class ids of shape (N,) or (B, T). Positions
    whose target equals ``ignore_index`` add nothing to the loss or the count. With ``reduction="mean"``
    and every position ignored the result is NaN, as in PyTorch.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    xp = backend.xp_of(logits.data)
    t = _targets_array(targets, xp)
    if logits.ndim not in (2, 3) or t.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]} (logits (N, C) or (B, T, C)), got {t.shape}")
    C = logits.shape[-1]
    x = logits.data.reshape(-1, C)                       # (N, C)
    t = t.reshape(-1)                                    # (N,)
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= C))
    if bool(bad.any()):
        raise IndexError(f"cross_entropy: target id {int(t[bad][0])} is out of range for {C} classes")
    safe_t = xp.where(keep, t, 0)
    rows = xp.arange(x.shape[0])
    m, lse_m = _row_stats(x, xp)                          # max, and log sum exp(x - m) per row: in [0, log C]
    # from the shifted values: lse - x_t would round log C away beside a large max (float32 logits of 1e4)
    losses = (lse_m - (x[rows, safe_t] - m[:, 0])) * keep  # (N,)
    count = int(keep.sum())
    if reduction == "mean":
        out = losses.sum() / x.dtype.type(count) if count else xp.asarray(np.nan, dtype=x.dtype)
    elif reduction == "sum":
        out = losses.sum()
    else:
        out = losses.reshape(logits.shape[:-1])
    out = out.astype(x.dtype, copy=False)

    def backward(g):  # d loss_i / d x_ij = softmax_ij - [j == t_i], for kept rows
        if reduction == "none":
            scale = g.reshape(-1) * keep
        else:
            scale = keep * (g / count if reduction == "mean" and count else g)
        if cuda_kernels.use(xp, "cross_entropy"):         # the same formula in one GPU kernel
            return (cuda_kernels.cross_entropy_backward(x, m, lse_m, safe_t, scale).reshape(logits.shape),)
        grad = _softmax_minus_onehot(x, m, lse_m, safe_t, scale.astype(x.dtype, copy=False), xp)  # recomputed
        return (grad.reshape(logits.shape),)
    return Tensor._make(out, (logits,), backward, "cross_entropy")
