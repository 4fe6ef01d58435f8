"""``tt.Function``: define a new op by its forward and its backward, on plain arrays, as in PyTorch.

    class Hypot(tt.Function):
        @staticmethod
        def forward(ctx, a, b):                      # arrays in (NumPy, or CuPy on "cuda"), one array out
            out = ctx.xp.sqrt(a * a + b * b)
            ctx.save_for_backward(a, b, out)
            return out

        @staticmethod
        def backward(ctx, grad):                     # dL/d(out) in, dL/d(each forward argument) out
            a, b, out = ctx.saved_tensors
            return grad * a / out, grad * b / out    # d/da hypot = a / hypot, d/db hypot = b / hypot

    hypot = Hypot.apply                              # hypot(x, y) takes and returns Tensors

``apply`` hands ``forward`` the arrays of its Tensor arguments and every other argument (a number, an
axis) as it is, and records the op when some input requires grad. ``backward`` returns one gradient per
forward argument (None where there is none; a lone gradient may be returned bare). The engine then
checks each gradient against its input: the same dtype, and the input's shape, or a shape the input
broadcasts to, which is summed back to the input's shape (as PyTorch does); anything else is an error
naming the Function. ``tt.gradcheck`` tests a Function like any op. Backward's in-place check (see
``Tensor.data``) watches the inputs whose arrays ``forward`` saved, or saved a view of (``a.T``, ``a[1:]``).
"""
import numpy as np

from . import backend
from .ops.common import same_device, unbroadcast
from .tensor import Tensor


class FunctionCtx:
    """What ``forward`` leaves for ``backward``: ``save_for_backward(*arrays)`` / ``saved_tensors``, plus
    any attribute you set. ``xp`` is the array module of the inputs (numpy or cupy);
    ``needs_input_grad[i]`` tells whether argument i needs a gradient."""

    def __init__(self, xp, needs_input_grad):
        self.xp, self.needs_input_grad, self.saved_tensors = xp, needs_input_grad, ()

    def save_for_backward(self, *arrays):
        """Keep arrays for ``backward`` (read them back from ``ctx.saved_tensors``, in this order)."""
        self.saved_tensors = arrays


class Function:
    """Base class of an op defined by two static methods, ``forward(ctx, *args)`` and ``backward(ctx, grad)``;
    call it with ``MyOp.apply(*args)``. See this module's docstring for an example."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("a Function must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("a Function must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args):
        name = cls.__name__
        inputs = [a for a in args if isinstance(a, Tensor)]
        if not inputs:
            raise TypeError(f"{name}.apply: no Tensor among the arguments")
        same_device(name, *inputs)
        ctx = FunctionCtx(backend.xp_of(inputs[0].data), tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
        out = cls.forward(ctx, *(a.data if isinstance(a, Tensor) else a for a in args))
        if not hasattr(out, "shape") or not hasattr(out, "dtype"):
            raise TypeError(f"{name}.forward must return one array, not {type(out).__name__}")
        # what backward needs of each argument: its place, shape and dtype (not the tensor: it may be freed)
        specs = [(i, a.shape, a.dtype) for i, a in enumerate(args) if isinstance(a, Tensor)]
        n_args = len(args)

        def backward(grad):
            grads = cls.backward(ctx, grad)
            grads = grads if isinstance(grads, (tuple, list)) else (grads,)
            if len(grads) != n_args:
                raise ValueError(f"{name}.backward returned {len(grads)} gradients for {n_args} forward arguments")
            return tuple(_fitted(name, i, grads[i], shape, dtype) if ctx.needs_input_grad[i] else None
                         for i, shape, dtype in specs)
        result = Tensor._make(out, tuple(inputs), backward, name)
        if result.requires_grad:        # version checks watch only what backward reads (see Tensor.data)
            saved = {id(_base(a)) for a in ctx.saved_tensors}          # a view is watched as its array
            result._saved = tuple(t for t in inputs + [result] if id(_base(t.data)) in saved)
        return result


def _base(array):
    """The array that ``array`` looks into (itself when it owns its memory): a view saved for backward
    (``a.T``, ``a.reshape(-1)``, ``a[1:]``) reads its input's values as the input itself would."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return array


def _fitted(name, i, g, shape, dtype):
    """Gradient ``g`` of argument ``i`` checked against the argument: same dtype, and its shape (a broadcast
    shape is summed back to it)."""
    if g is None:
        return None
    if isinstance(g, Tensor):
        raise TypeError(f"{name}.backward: the gradient of argument {i} is a Tensor; return an array "
                        "(its .data): backward works on arrays, as forward does")
    if not hasattr(g, "shape") or g.dtype != dtype:
        got = g.dtype if hasattr(g, "dtype") else type(g).__name__
        raise TypeError(f"{name}.backward: the gradient of argument {i} is {got}, the argument is {dtype} "
                        f"(make constants with the data's dtype, e.g. x.dtype.type(2))")
    if g.shape != shape:
        try:
            if np.broadcast_shapes(shape, g.shape) != g.shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"{name}.backward: the gradient of argument {i} has shape {g.shape}, "
                             f"the argument has shape {shape}") from None
        g = unbroadcast(g, shape)
    return g
