"""Layer normalisation over the last axis, fused with its hand-derived backward."""
from .. import backend, cuda_kernels
from ..tensor import Tensor
from .common import as_tensor, same_device


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
    mu = d.mean(axis=-1, keepdims=True)
    xhat = d - mu
    var = (xhat * xhat).mean(axis=-1, keepdims=True)
    rstd = 1 / xp.sqrt(var + d.dtype.type(eps))          # (..., 1)
    xhat *= rstd                                         # normalised input, kept for backward
    out = xhat * weight.data if weight is not None else xhat.copy()
    if bias is not None:
        out += bias.data
    parents = tuple(p for p in (x, weight, bias) if p is not None)

    def backward(g):
        # with gh = g * weight: dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))
        gh = g * weight.data if weight is not None else g
        gx = gh - gh.mean(axis=-1, keepdims=True) - xhat * (gh * xhat).mean(axis=-1, keepdims=True)
        gx *= rstd
        grads = [gx]
        batch = tuple(range(g.ndim - 1))
        if weight is not None:
            grads.append((g * xhat).sum(axis=batch) if weight.requires_grad else None)   # d/dw = xhat
        if bias is not None:
            grads.append(g.sum(axis=batch) if bias.requires_grad else None)             # d/db = 1
        return tuple(grads)
    return Tensor._make(out, parents, backward, "layer_norm")
