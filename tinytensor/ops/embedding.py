"""Embedding lookup and its scatter-add backward (without np.add.at's slow path).

Its composed twin: ``reference.embedding`` (indexing, whose backward is np.add.at).
"""
import numpy as np

from .. import backend, config, twins as reference
from ..cuda import kernels as cuda_kernels
from ..tensor import Tensor


def _ids_array(ids, xp, num):
    data = ids.data if isinstance(ids, Tensor) else ids
    data = xp.asarray(data)
    if data.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, not {data.dtype}")
    if data.size:
        low, high = int(data.min()), int(data.max())
        if low < 0 or high >= num:
            bad = low if low < 0 else high
            raise IndexError(f"embedding: id {bad} is out of range for a table of {num} rows")
    return data


def scatter_add_rows(ids, rows, num, xp):
    """A (num, D) array whose row i is the sum of ``rows[j]`` over all j with ids[j] == i."""
    D = rows.shape[-1]
    rows = rows.reshape(-1, D)
    ids = ids.reshape(-1)
    out = xp.zeros((num, D), dtype=rows.dtype)
    if xp is not np:
        return cuda_kernels.scatter_add(xp, out, ids, rows)   # an atomic scatter: fast on the GPU
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if ids.size else np.zeros(0, int)
    if ids.size:
        out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def embedding(ids, weight):
    """Rows of ``weight`` (num, D) picked by integer ``ids`` of any shape -> (*ids.shape, D)."""
    xp = backend.xp_of(weight.data)
    num = weight.shape[0]
    idx = _ids_array(ids, xp, num)
    if config.reference_ops:
        return reference.embedding(idx, weight)
    out = weight.data[idx]

    def backward(g):  # each row of the table gets the sum of the gradients of the positions that used it
        return (scatter_add_rows(idx, g, num, xp),)
    return Tensor._make(out, (weight,), backward, "embedding", twin=lambda: reference.embedding(idx, weight))
