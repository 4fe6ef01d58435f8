"""The graph page's data: every tensor of a computation, one recorded backward pass, and checks.

``graph_payload(loss)`` returns a plain dict (JSON-able through ``jsondata``):

  nodes   one per tensor, numbered ``#n`` as ``backward(trace=True)`` and ``tt.to_dot`` number them:
          op, name, shape, dtype, value, its gradient before and after backward, the op's formula and
          the file:line of its backward
  steps   backward in the order it ran: the gradient that reached a node, and for each input the local
          derivative times it, with ``accumulated`` where the input already had a gradient (``+=``)
  checks  for chosen leaves, central finite differences beside autograd's gradient (needs ``fn``)
  groups, layout   folded repeats and the boxes' places (``layout.py``)
"""
import numpy as np

from .. import backend
from ..trace import is_op_node, number_tensors, tensor_name
from .formulas import formula, source_of
from .layout import fold, place
from .record import finite_differences, record_backward
from .summary import summarize

CHECK_ELEMENTS = 4     # finite differences for this many elements of each checked leaf
CHECK_LEAVES = 4       # and this many leaves when ``check`` is not given


def graph_payload(root, fn=None, check=None, names=None, max_nodes=200, title=None):
    """The page's data for the graph that made ``root`` (see the module doc).

    ``fn``: a callable with no arguments that computes ``root`` again from the leaves' current values;
    with it the page shows finite differences for the leaves in ``check`` (default: the first few leaves
    that need a gradient). ``names`` maps readable names to tensors, like ``tt.trace``'s."""
    named = {id(t): n for n, t in (names or {}).items()}
    order = number_tensors(root)
    index = {id(t): i for i, t in enumerate(order)}
    before = {id(t): (None if t.grad is None else backend.to_numpy(t.grad).copy()) for t in order}
    sources = {id(t): source_of(t._backward) for t in order if is_op_node(t)}
    steps, totals = record_backward(root)
    nodes = [_node(t, i, index, named, before, totals, sources) for i, t in enumerate(order)]
    parents = {i: [index[id(p)] for p in t._parents] for i, t in enumerate(order)}
    is_op = {i: is_op_node(t) for i, t in enumerate(order)}
    groups, group_of = fold(list(range(len(order))), parents, is_op, {i: n["op"] for i, n in enumerate(nodes)},
                            max_nodes=max_nodes)
    for i, g in group_of.items():
        nodes[i]["group"] = g
    return {
        "title": title or f"the graph of a tensor of shape {tuple(root.shape)}",
        "root": index[id(root)],
        "seed": "1" if root.size == 1 else "ones (backward of the sum of every element)",
        "nodes": nodes,
        "steps": [_step(s, index) for s in steps],
        "checks": _checks(fn, check, order, index, totals) if fn is not None else [],
        "groups": groups,
        "layout": place(list(range(len(order))), parents, group_of, len(groups)),
    }


def _node(t, i, index, named, before, totals, sources):
    op = is_op_node(t)
    forward, local = formula(t._op) if op else ("", "")
    kind = "op" if op else ("leaf" if t.requires_grad else "const")
    return {"id": i, "kind": kind, "op": t._op if op else kind, "name": tensor_name(t, named),
            "shape": list(t.shape), "dtype": str(t.dtype), "value": summarize(backend.to_numpy(t.data)),
            "grad_before": summarize(before[id(t)]), "grad_after": summarize(_after(t, before, totals)),
            "forward": forward, "local": local, "source": sources.get(id(t)),
            "parents": [index[id(p)] for p in t._parents], "group": None}


def _after(t, before, totals):
    """``.grad`` as it will be after backward: leaves add this pass's sum; op nodes show the sum itself."""
    g = totals.get(id(t))
    if g is None:
        return before[id(t)]
    if t.is_leaf and before[id(t)] is not None:
        return before[id(t)] + g
    return g


def _step(step, index):
    return {"node": index[id(step["node"])], "grad_in": summarize(step["grad_in"]),
            "to": [{"parent": index[id(p)], "grad": summarize(g), "accumulated": reused, "total": summarize(total)}
                   for p, g, reused, total in step["to"]]}


def _checks(fn, check, order, index, totals):
    leaves = list(check) if check is not None else [t for t in order if t.is_leaf and t.requires_grad][:CHECK_LEAVES]
    out = []
    for leaf in leaves:
        if id(leaf) not in index:
            raise ValueError("viz: a tensor in check= is not part of this graph")
        grad = totals.get(id(leaf))
        n = min(CHECK_ELEMENTS, leaf.size)
        picks = list(range(n)) if leaf.size <= n else sorted(np.random.default_rng(index[id(leaf)]).choice(
            leaf.size, n, replace=False).tolist())
        numeric = finite_differences(fn, leaf, picks)
        for flat_i, num in zip(picks, numeric):
            auto = 0.0 if grad is None else float(grad.reshape(-1)[flat_i])
            out.append({"node": index[id(leaf)], "index": [int(v) for v in np.unravel_index(flat_i, leaf.shape)],
                        "autograd": auto, "numeric": num,
                        "rel_error": abs(auto - num) / max(1e-12, abs(auto) + abs(num))})
    return out
