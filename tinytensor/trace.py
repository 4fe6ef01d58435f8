"""Watch backpropagation happen: a printed trace of every step ``backward()`` takes.

    z = x * y + x
    z.backward(trace=True)        # or:  with tt.trace(): z.backward()

prints, in the order backward runs them, each op node with its output shape, the gradient that
arrived at it (dL/d(output)) and the gradient it passed to each of its inputs, then each leaf with the
gradient added into its ``.grad``. A gradient is shown as its shape, its L2 norm and, for small tensors,
its values (flattened, 4 significant digits).

Tensors are named ``#n`` by their place in the forward pass: a walk from the output back through
``_parents`` (left input first) that writes a tensor out only after all of its inputs, so inputs get
small numbers and the output the largest. The numbers are stable from run to run (no memory addresses)
and are the same ones ``tt.to_dot`` puts in its picture. Give a tensor a readable name with
``x.name = "x"`` or ``tt.trace(names={"x": x})``.
"""
import contextlib
import sys

import numpy as np

from . import backend
from .tensor import Tensor, _freed, _trace_printers

_settings = []      # stack of dicts pushed by trace(): file, names, max_values


def number_tensors(root):
    """Every tensor ``root`` was computed from (itself included), inputs before outputs, as a list.

    Iterative post-order walk: a tensor's inputs are numbered (left to right) before the tensor itself.
    Constants (tensors that need no gradient) are included, as they appear in ``_parents``.
    """
    order, seen = [], {id(root)}
    stack = [(root, iter(root._parents))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append((parent, iter(parent._parents)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def is_op_node(t):
    """True for a tensor an op made and that still has a backward (a graph node); False for leaves,
    constants, results made under ``no_grad`` and nodes whose graph ``backward()`` already freed."""
    return t._backward is not None and t._backward is not _freed


def tensor_name(t, names=None):
    """The name a learner gave a tensor (``names`` maps id -> name, then a ``.name`` attribute), or None."""
    if names and id(t) in names:
        return names[id(t)]
    return getattr(t, "name", None)


def fmt_number(v):
    """One number, 4 significant digits, no trailing zeros: 1, 0.5, -2.5e-05, inf."""
    v = float(v)
    if v == 0:
        return "0"
    return format(v, ".4g")


def fmt_shape(shape):
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_array(a, max_values=6):
    """``shape norm N [v0, v1, ...]``: values shown when the array has at most ``max_values`` elements,
    otherwise the first ``max_values`` followed by ``...``."""
    a = backend.to_numpy(a)
    flat = a.reshape(-1).astype(np.float64)
    norm = float(np.sqrt((flat * flat).sum())) if flat.size else 0.0
    shown = ", ".join(fmt_number(v) for v in flat[:max_values])
    more = ", ..." if flat.size > max_values else ""
    return f"{fmt_shape(a.shape)} norm {fmt_number(norm)} [{shown}{more}]"


class TracePrinter:
    """Prints one backward pass step by step; ``Tensor.backward(trace=True)`` makes one and calls it.

    ``step(node, g, input_grads)`` runs after an op node's backward; ``leaf(node, g)`` after a leaf's
    ``.grad`` was updated. The first call sees the output (backward starts there) and numbers the graph.
    """

    def __init__(self, file=None, names=None, max_values=None):
        current = _settings[-1] if _settings else {}
        self.file = file if file is not None else current.get("file")
        names = names if names is not None else current.get("names")
        self.names = {id(t): n for n, t in names.items()} if names else {}
        self.max_values = max_values if max_values is not None else current.get("max_values", 6)
        self.ids = None
        self.count = 0

    def _out(self, line):
        print(line, file=self.file if self.file is not None else sys.stdout)

    def _start(self, root):
        order = number_tensors(root)
        self.ids = {id(t): i for i, t in enumerate(order)}
        self._out(f"backward from {self.label(root)}, shape {fmt_shape(root.shape)}: "
                  f"{len(order)} tensors, numbered inputs-first (#0 was made first)")

    def label(self, t):
        """``#2 mul`` for an op result, ``#0 x`` for a named leaf, ``#1 leaf`` / ``#1 const`` otherwise."""
        i = self.ids.get(id(t)) if self.ids is not None else None
        tag = f"#{i}" if i is not None else "#?"
        name = tensor_name(t, self.names)
        op = is_op_node(t)
        kind = t._op if op else ("leaf" if t.requires_grad else "const")
        if name:
            return f"{tag} {name}" + (f" ({kind})" if op else "")
        return f"{tag} {kind}"

    def step(self, node, g, input_grads):
        if self.ids is None:
            self._start(node)
        self.count += 1
        self._out(f"[{self.count}] {self.label(node)} -> {fmt_shape(node.shape)}")
        self._out(f"      grad in  {fmt_array(g, self.max_values)}")
        for parent, pg in zip(node._parents, input_grads):
            who = self.label(parent)
            if pg is None or not parent.requires_grad:
                self._out(f"      to {who}: nothing (needs no gradient)")
            else:
                self._out(f"      to {who}: {fmt_array(pg, self.max_values)}")

    def leaf(self, node, g):
        if self.ids is None:
            self._start(node)
        self.count += 1
        self._out(f"[{self.count}] {self.label(node)} .grad += {fmt_array(g, self.max_values)}")


class trace(contextlib.ContextDecorator):
    """Context manager (and decorator): every ``backward()`` inside prints its trace.

        with tt.trace(names={"x": x, "y": y}):
            z.backward()

    ``file`` is where lines go (default: stdout at the time of printing), ``names`` maps a readable
    name to a tensor, ``max_values`` is how many values of a gradient to show.
    """

    def __init__(self, file=None, names=None, max_values=6):
        self.settings = {"file": file, "names": names, "max_values": max_values}

    def __enter__(self):
        _settings.append(self.settings)
        self._previous = Tensor.__dict__["backward"]
        previous = self._previous

        def backward(tensor, grad=None, retain_graph=None, trace=True, create_graph=False):
            return previous(tensor, grad, retain_graph=retain_graph, trace=trace, create_graph=create_graph)
        backward.__doc__ = previous.__doc__
        Tensor.backward = backward
        return self

    def __exit__(self, *exc):
        Tensor.backward = self._previous
        for i in range(len(_settings) - 1, -1, -1):     # by identity: settings may hold tensors
            if _settings[i] is self.settings:
                del _settings[i]
                break
        return False


_trace_printers.append(TracePrinter)     # what backward(trace=True) prints with
