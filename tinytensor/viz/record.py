"""One backward pass, recorded step by step, without leaving a trace on the user's tensors.

``record_backward(root)`` runs ``root.backward(retain_graph=True)`` with a backward hook that writes
down, for every op node in the order backward visits them, the gradient that arrived (dL/d node) and
what it passed to each input. Where an input was already given a gradient by an earlier step (it is
used more than once) the step says ``+=`` and shows the running sum. Afterwards every ``.grad`` is put
back as it was and the graph stays whole, so ``loss.backward()`` still works after ``viz.show(loss)``.
"""
import numpy as np

from .. import backend
from ..tensor import _backward_hooks, _freed
from ..trace import number_tensors


def check_graph(root):
    """A clear error for a tensor whose graph cannot be shown or stepped."""
    if not root.requires_grad:
        raise ValueError("viz: this tensor does not require grad, so it has no graph to show; compute it "
                         "from a tensor made with requires_grad=True")
    if any(t._backward is _freed for t in number_tensors(root)):
        raise ValueError("viz: backward() already freed this graph; call viz.show / viz.export before "
                         "backward(), or pass retain_graph=True to backward()")


def record_backward(root):
    """(steps, totals): steps as dicts {node, grad_in, to: [(parent, grad, accumulated, total)]} with
    tensors and NumPy arrays; totals maps id(tensor) -> its gradient summed over the whole pass."""
    check_graph(root)
    order = number_tensors(root)
    saved = {id(t): t.grad for t in order}
    totals, steps = {}, []

    def hook(node, g, input_grads):
        step = {"node": node, "grad_in": backend.to_numpy(g), "to": []}
        for parent, pg in zip(node._parents, input_grads):
            if pg is None or not parent.requires_grad:
                continue
            pg = backend.to_numpy(pg)
            reused = id(parent) in totals
            totals[id(parent)] = totals[id(parent)] + pg if reused else np.array(pg, copy=True)
            step["to"].append((parent, pg, reused, totals[id(parent)].copy()))
        steps.append(step)

    seed = None if root.size == 1 else backend.xp_of(root.data).ones_like(root.data)
    _backward_hooks.append(hook)
    try:
        root.backward(seed, retain_graph=True)
    finally:
        _backward_hooks.remove(hook)
        for t in order:
            t.grad = saved[id(t)]
    totals[id(root)] = np.ones(root.shape, dtype=root.dtype)
    return steps, totals


def finite_differences(fn, leaf, indices, eps=None):
    """Central differences ``(f(x + eps) - f(x - eps)) / (2 eps)`` of the scalar ``fn()`` (its sum, when it
    is not a scalar) with respect to ``leaf``'s elements at ``indices`` (flat positions); the value is put
    back after each probe. ``eps`` defaults to 1e-6 for float64 and 1e-3 for float32, times max(1, |x|)."""
    from ..grad_mode import no_grad
    data = leaf.data
    flat = data.reshape(-1)
    if not np.shares_memory(flat, data):
        raise ValueError("viz: finite differences need a contiguous leaf array")
    base = 1e-6 if data.dtype == np.float64 else 1e-3
    out = []
    for i in indices:
        x = float(flat[i])
        h = (eps or base) * max(1.0, abs(x))
        values, points = [], []
        try:
            for shifted in (x + h, x - h):
                flat[i] = shifted
                points.append(float(flat[i]))       # the value really stored (float32 rounds it)
                with no_grad():
                    y = fn()
                values.append(float(np.asarray(backend.to_numpy(getattr(y, "data", y)), dtype=np.float64).sum()))
        finally:
            flat[i] = x
        out.append((values[0] - values[1]) / (points[0] - points[1]))
    return out
