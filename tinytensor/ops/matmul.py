"""Matrix product with NumPy's rules: 1-D operands, batches, and broadcast batch axes."""
from .. import amp, backend
from ..tensor import Tensor
from .common import operands, unbroadcast


def matmul(a, b):
    """``a @ b``. Shapes (..., n, k) @ (..., k, m) -> (..., n, m); leading axes broadcast."""
    a, b = operands(*amp.low("matmul", a, b), "matmul")       # 16-bit inside tt.autocast
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not line up ({k_a} != {k_b})")
    try:
        if a.ndim > 2 and b.ndim == 2:   # fold the batch into rows: one BLAS call instead of one per matrix
            out = (a.data.reshape(-1, k_a) @ b.data).reshape(a.shape[:-1] + (b.shape[1],))
        else:
            out = a.data @ b.data
    except ValueError:
        raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} cannot be broadcast") from None
    xp = backend.xp_of(a.data)

    def backward(g):  # dL/da = g @ b^T, dL/db = a^T @ g (as matrices, then summed over broadcast batches)
        A = a.data if a.ndim > 1 else a.data[None, :]          # (1, k) for a vector
        B = b.data if b.ndim > 1 else b.data[:, None]          # (k, 1) for a vector
        G = g
        if b.ndim == 1:
            G = G[..., None]            # (..., n) -> (..., n, 1); a 0-d g (vector @ vector) -> (1,)
        if a.ndim == 1:
            G = G[..., None, :]         # (..., m) -> (..., 1, m)
        ga = gb = None
        if a.requires_grad:
            if B.ndim == 2 and G.ndim > 2:
                ga = (G.reshape(-1, G.shape[-1]) @ B.T).reshape(G.shape[:-1] + (B.shape[0],))
            else:
                ga = G @ xp.swapaxes(B, -1, -2)
            ga = unbroadcast(ga, A.shape).reshape(a.shape)
        if b.requires_grad:
            if B.ndim == 2 and G.ndim > 2:
                # a shared matrix against a batch: one big product over all rows instead of a loop
                gb = A.reshape(-1, A.shape[-1]).T @ G.reshape(-1, G.shape[-1])
            else:
                gb = unbroadcast(xp.swapaxes(A, -1, -2) @ G, B.shape)
            gb = gb.reshape(b.shape)
        return ga, gb

    def vjp(g):  # the same in Tensor ops (what create_graph=True records)
        A = a if a.ndim > 1 else a.reshape(1, -1)
        B = b if b.ndim > 1 else b.reshape(-1, 1)
        G = g.unsqueeze(-1) if b.ndim == 1 else g
        G = G.unsqueeze(-2) if a.ndim == 1 else G
        ga = unbroadcast(G @ B.swapaxes(-1, -2), A.shape).reshape(a.shape) if a.requires_grad else None
        gb = unbroadcast(A.swapaxes(-1, -2) @ G, B.shape).reshape(b.shape) if b.requires_grad else None
        return ga, gb
    return Tensor._make(out, (a, b), backward, "matmul", vjp)
