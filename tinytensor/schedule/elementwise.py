"""The schedule of the elementwise fused ops (GELU in ops/activation.py, SiLU and SwiGLU in ops/swiglu.py):
every array seen as rows (N, last axis), and matching row blocks shared over the threads."""
from . import parallel


def rows(a):
    """A 2-D (rows, last axis) view of ``a`` (a copy only when ``a`` is not laid out as rows; 0-d: (1, 1))."""
    return a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)


def in_row_blocks(fn, *arrays):
    """``fn(*blocks)`` on matching row blocks of ``arrays`` (each seen as rows), shared over the threads."""
    parallel.for_row_blocks(fn, *(rows(a) for a in arrays))
