"""A fully connected layer as one op: y = x W^T + b, with all batch axes folded into rows for BLAS."""
from ..tensor import Tensor


def linear(x, weight, bias=None):
    """x (..., in) times weight (out, in) transposed, plus bias (out,) -> (..., out)."""
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
    x2 = x.data.reshape(-1, in_f)                       # (N, in)
    y = x2 @ weight.data.T                              # (N, out)
    if bias is not None:
        y += bias.data
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        g2 = g.reshape(-1, out_f)                       # (N, out)
        gx = (g2 @ weight.data).reshape(x.shape) if x.requires_grad else None    # dy/dx = W
        gw = g2.T @ x2 if weight.requires_grad else None                         # dy/dW = x (outer product)
        grads = (gx, gw)
        if bias is not None:
            grads += (g2.sum(axis=0) if bias.requires_grad else None,)
        return grads
    return Tensor._make(y.reshape(x.shape[:-1] + (out_f,)), parents, backward, "linear")

