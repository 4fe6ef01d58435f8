"""Gradients as values: ``tt.grad`` (PyTorch's ``torch.autograd.grad``) and ``tt.jvp``.

    x = tt.tensor(2.0, requires_grad=True)
    y = x ** 3
    (dy,) = tt.grad(y, x, create_graph=True)      # 3 x^2 = 12, a Tensor with a graph of its own
    (d2y,) = tt.grad(dy, x)                       # 6 x = 12

``backward()`` adds into every leaf's ``.grad``; ``grad`` hands back the gradients of the inputs asked
for and touches no ``.grad``. With ``create_graph=True`` each op's backward runs in Tensor ops (a fused op
goes through its composed twin in reference.py), so the gradients can be differentiated again, to any
order. ``jvp`` gets forward-mode products J v from two reverse passes (the "double-vjp trick").
"""
from . import backend
from .accumulate import writable
from .tensor import Tensor, enable_grad


def _as_tuple(values, what):
    values = (values,) if isinstance(values, Tensor) or values is None else tuple(values)
    if not values:
        raise ValueError(f"grad(): {what} is empty")
    return values


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``: a tuple, one Tensor (or None) per input.

    ``outputs`` and ``inputs`` are Tensors or sequences of them; with several outputs the result is the sum
    of their vector-Jacobian products. ``grad_outputs`` holds one gradient per output (None: ones, for an
    output with one element); it may itself require grad. ``create_graph=True`` records the pass, so the
    gradients can be differentiated again; ``retain_graph`` (default: ``create_graph``) keeps the graph
    for another pass. An input no output depends on raises, or with ``allow_unused=True`` gives None.
    """
    outputs, inputs = _as_tuple(outputs, "outputs"), _as_tuple(inputs, "inputs")
    seeds = (None,) * len(outputs) if grad_outputs is None else _as_tuple(grad_outputs, "grad_outputs")
    if len(seeds) != len(outputs):
        raise ValueError(f"grad(): {len(seeds)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(outputs + inputs):
        kind, n = ("output", i) if i < len(outputs) else ("input", i - len(outputs))
        if not isinstance(t, Tensor):
            raise TypeError(f"grad(): {kind} {n} is a {type(t).__name__}, not a Tensor")
        if not t.requires_grad:
            raise RuntimeError(f"grad(): {kind} {n} does not require grad (make the inputs with "
                               "requires_grad=True and compute the outputs from them)")
    # one pass from all outputs at once: a root above them whose backward hands each its seed
    seeds = tuple(_seed(out, s, create_graph) for out, s in zip(outputs, seeds))
    arrays = tuple(s.data for s in seeds)
    with enable_grad():
        root = Tensor._make(backend.xp_of(arrays[0]).zeros((), dtype=outputs[0].dtype), outputs,
                            lambda g: arrays, "grad", vjp=lambda g: seeds)
    wanted = dict.fromkeys(map(id, inputs))
    root._backward_pass(None, create_graph if retain_graph is None else retain_graph, False, create_graph, wanted)
    result = []
    for i, x in enumerate(inputs):
        g = wanted[id(x)]
        if g is None and not allow_unused:
            raise RuntimeError(f"grad(): input {i} (shape {x.shape}) was not used to compute the outputs; "
                               "pass allow_unused=True to get None for it")
        result.append(g if g is None or isinstance(g, Tensor) else Tensor._plain(writable(g)))
    return tuple(result)


def _seed(out, given, create_graph):
    """The gradient a pass starts from at ``out``, as a Tensor (checked like backward()'s)."""
    if given is None and out.size != 1:
        raise RuntimeError(f"grad(): output of shape {out.shape} needs a grad_output of that shape")
    checked = out._seed_gradient(given)             # ones, or the given values, shape checked
    if isinstance(given, Tensor) and create_graph:
        return given                                # it may require grad: its graph is kept
    return Tensor._plain(checked)


def jvp(fn, inputs, tangents):
    """(fn(*inputs), J v): the output and its directional derivative along ``tangents`` (forward mode).

    ``inputs`` and ``tangents`` are Tensors or matching sequences of them. Computed by the double-vjp
    trick: u -> J^T u is linear in u, so the gradient of <J^T u, v> with respect to u is J v."""
    inputs = tuple(x.detach().requires_grad_() for x in _as_tuple(inputs, "inputs"))
    tangents = tuple(t.data if isinstance(t, Tensor) else t for t in _as_tuple(tangents, "tangents"))
    if len(tangents) != len(inputs) or any(v.shape != x.shape for v, x in zip(tangents, inputs)):
        raise ValueError(f"jvp(): tangents of shapes {[tuple(v.shape) for v in tangents]} for inputs of "
                         f"shapes {[tuple(x.shape) for x in inputs]}; they must match")
    tangents = tuple(Tensor._plain(backend.xp_of(x.data).asarray(v, dtype=x.dtype)) for v, x in zip(tangents, inputs))
    with enable_grad():
        out = fn(*inputs)
    if not out.requires_grad:
        return out, Tensor._plain(backend.xp_of(out.data).zeros_like(out.data))
    u = Tensor._plain(backend.xp_of(out.data).zeros_like(out.data), requires_grad=True)
    vjps = grad(out, inputs, u, create_graph=True, allow_unused=True)         # J^T u, a graph in u
    used = [(g, v) for g, v in zip(vjps, tangents) if g is not None and g.requires_grad]
    if not used:
        return out.detach(), Tensor._plain(backend.xp_of(out.data).zeros_like(out.data))
    (tangent_out,) = grad([g for g, _ in used], u, [v for _, v in used], allow_unused=True)
    if tangent_out is None:
        tangent_out = Tensor._plain(backend.xp_of(out.data).zeros_like(out.data))
    return out.detach(), tangent_out
