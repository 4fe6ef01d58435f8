"""Layer normalisation over the last axis, fused with its hand-derived backward.

NumPy is slow at one thing layer norm does everywhere: scaling every row by its own number (x / std)
or every column by its own weight. On rows of a few hundred numbers such a broadcast pass costs nearly
twice a plain elementwise one, so here each per-row-times-per-column factor (rstd w^T) is first spread
into a full (rows, D) matrix by a matrix product, [a, 0] @ [u; 0] = a u^T (BLAS writes it about as fast
as a copy), and then applied by a plain pass. Row sums (means, variances, the backward's dot products)
are matrix-vector products or ``vecdot``. What stays a broadcast: x - mean and + bias.
"""
from .. import backend, cuda_kernels, parallel
from ..tensor import Tensor
from .common import as_tensor, row_dots, same_device


def _spread(xp, out, a, u):
    """out[i, j] = a[i] u[j]: a per-row times a per-column factor, as one BLAS product into ``out``."""
    left = xp.zeros((len(a), 2), dtype=out.dtype)       # rank 2 on purpose: NumPy sends a rank-1
    left[:, 0] = a                                      # product (k = 1) to a slow non-BLAS loop
    right = xp.zeros((2, len(u)), dtype=out.dtype)
    right[0] = u
    xp.matmul(left, right, out=out)
    return out


def _forward_rows(d, xc, rstd, out, w, b, eps):
    """Rows (N, D): out = (d - mean) / sqrt(var + eps) w + b; fills in xc = d - mean and rstd for backward."""
    xp = backend.xp_of(d)
    D = d.shape[1]
    inv_d = xp.full(D, 1.0 / D, dtype=d.dtype)
    xp.subtract(d, (d @ inv_d)[:, None], out=xc)
    # float32 rounding leaves the BLAS mean slightly off; the mean of xc says by how much (0 if exact)
    error = xc @ inv_d
    var = row_dots(xc, xc) / d.dtype.type(D) - error * error
    rstd[:] = 1 / xp.sqrt(xp.maximum(var, 0) + d.dtype.type(eps))
    if float(xp.abs(error * rstd).max(initial=0)) > xp.finfo(d.dtype).eps:
        xc -= error[:, None]            # only when the rounding would show in the result (rows far from 0)
    _spread(xp, out, rstd, w)           # out = xc * (rstd w^T) + b
    out *= xc
    if b is not None:
        out += b


def _backward_rows(g, xc, rstd, gx, w, want_w, want_b):
    """Rows (N, D): dx into ``gx``; returns dw and db (None where not wanted).

    With xhat = xc rstd and gh = g w: dx = rstd (gh - mean(gh) - xhat mean(gh xhat)), which is
    g * (rstd w^T) + xc * (k 1^T) + c 1^T for the per-row numbers k and c below.
    """
    xp = backend.xp_of(g)
    N, D = g.shape
    g_xc = g * xc
    w_over_d = w / g.dtype.type(D)
    mean_gh = g @ w_over_d
    mean_gh_xhat = rstd * (g_xc @ w_over_d)
    dw = rstd @ g_xc if want_w else None                 # sum over rows of g xhat
    db = xp.ones(N, dtype=g.dtype) @ g if want_b else None
    k = -rstd * rstd * mean_gh_xhat
    c = -rstd * mean_gh
    ones = xp.ones(D, dtype=g.dtype)
    _spread(xp, gx, rstd, w)
    gx *= g
    spread = _spread(xp, g_xc, k, ones)                  # g * xc's memory, its sums taken
    spread *= xc
    gx += spread
    gx += _spread(xp, spread, c, ones)
    return dw, db


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias, statistics over the last axis (population variance)."""
    xp = backend.xp_of(x.data)
    D = x.shape[-1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (D,):
            raise ValueError(f"layer_norm: {name} of shape {tuple(p.shape)} for input of shape {x.shape}; "
                             f"expected ({D},)")
    weight = as_tensor(weight, x) if weight is not None else None
    bias = as_tensor(bias, x) if bias is not None else None
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.dtype != x.dtype:
            raise TypeError(f"layer_norm: input is {x.dtype} but {name} is {p.dtype}; convert one with .astype()")
    same_device("layer_norm", x, weight, bias)
    if cuda_kernels.use(xp, "layer_norm") and cuda_kernels.layer_norm_supported(x, weight, bias):
        return cuda_kernels.layer_norm(x, weight, bias, eps)     # one fused kernel per pass on a GPU
    d = x.data
    shape = d.shape
    D = shape[-1] if d.ndim else 1
    rows = lambda a: a.reshape(-1, D)                    # noqa: E731 (every array as (rows, D))
    n_rows = d.size // D if D else 0
    xc = xp.empty((n_rows, D), dtype=d.dtype)            # x - mean, kept for backward
    rstd = xp.empty(n_rows, dtype=d.dtype)
    out = xp.empty(shape, dtype=d.dtype)
    w = weight.data if weight is not None else xp.ones(D, dtype=d.dtype)
    b = bias.data if bias is not None else None
    # small products: BLAS's own threads would only be left spinning against the next op's threads
    parallel.on_one_thread(lambda: _forward_rows(rows(d), xc, rstd, rows(out), w, b, eps))
    parents = tuple(p for p in (x, weight, bias) if p is not None)

    def backward(g):
        gx = xp.empty(shape, dtype=d.dtype)
        want_w = weight is not None and weight.requires_grad
        want_b = bias is not None and bias.requires_grad
        dw, db = parallel.on_one_thread(
            lambda: _backward_rows(rows(g), xc, rstd, rows(gx), w, want_w, want_b))
        return (gx,) + ((dw,) if weight is not None else ()) + ((db,) if bias is not None else ())
    return Tensor._make(out, parents, backward, "layer_norm")
