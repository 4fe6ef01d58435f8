"""Counters for what a forward pass keeps alive, to print before and after ``backward()``.

    stats = tt.graph_stats(loss)    # GraphStats(nodes=..., arrays=..., bytes=..., ops={...})
    print(stats)                    # "graph: 7 op nodes holding 5 arrays, 1.2 KiB (add 2, mul 2, ...)"
    loss.backward()                 # frees the graph
    print(tt.graph_stats(loss))     # "graph: 0 op nodes holding 0 arrays, 0 B"

A graph node is a tensor an op made that can still run its backward. Its memory is every array the
node keeps reachable: its own output (``.data``) and whatever its backward saved for later (the
inputs and intermediates captured by the backward function). Each buffer is counted once even when
several nodes, or several views of it, share it. Leaves (your inputs and parameters) are not counted:
they stay alive whether or not a graph exists.

``tt.op_counter()`` counts the ops that run inside a ``with`` block, by name, and how many of their
results are still alive when you ask (a result stays alive while a graph node or a name refers to it).
"""
import collections
import gc
import weakref

from .tensor import Tensor, _hooks
from .trace import is_op_node


def fmt_bytes(n):
    """1023 B, 1.5 KiB, 3.2 MiB, ..."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _root_buffer(a):
    """The array that owns ``a``'s memory (views point at their base)."""
    while getattr(a, "base", None) is not None and hasattr(a.base, "nbytes"):
        a = a.base
    return a


def _saved_values(fn):
    """Arrays and tensors a backward function holds: its closure cells, one level of tuples/lists/dicts
    (and what a ``tt.Function`` saved)."""
    found = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:          # an empty cell
            continue
        if hasattr(value, "save_for_backward"):     # a tt.Function's context: what it saved
            value = value.saved_tensors
        items = value if isinstance(value, (tuple, list)) else value.values() if isinstance(value, dict) else (value,)
        for item in items:
            if isinstance(item, Tensor) or (hasattr(item, "nbytes") and hasattr(item, "dtype")):
                found.append(item)
    return found


class GraphStats(collections.namedtuple("GraphStats", "nodes arrays bytes ops")):
    """``nodes``: op nodes still able to run backward; ``arrays`` and ``bytes``: distinct buffers they keep
    alive (outputs and saved values, leaves excluded); ``ops``: node count per op name."""

    def __str__(self):
        detail = ", ".join(f"{name} {n}" for name, n in sorted(self.ops.items()))
        return (f"graph: {self.nodes} op nodes holding {self.arrays} arrays, {fmt_bytes(self.bytes)}"
                + (f" ({detail})" if detail else ""))


def graph_stats(tensor):
    """Count the graph nodes reachable from ``tensor`` and the bytes of the arrays they keep alive."""
    nodes, seen, stack = [], {id(tensor)}, [tensor]
    while stack:
        t = stack.pop()
        if is_op_node(t):
            nodes.append(t)
        for p in t._parents:
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    leaf_buffers = set()
    for t in list(nodes) + [tensor]:
        for p in t._parents:
            if not is_op_node(p):
                leaf_buffers.add(id(_root_buffer(p.data)))
    buffers = {}
    for t in nodes:
        held = [t.data]
        for v in _saved_values(t._backward):
            if isinstance(v, Tensor):
                if is_op_node(v) or v._parents:
                    held.append(v.data)
                elif id(_root_buffer(v.data)) not in leaf_buffers:
                    held.append(v.data)      # a constant the graph made (not one of the inputs)
            else:
                held.append(v)
        for a in held:
            root = _root_buffer(a)
            if id(root) not in leaf_buffers:
                buffers[id(root)] = root
    ops = collections.Counter(t._op for t in nodes)
    return GraphStats(len(nodes), len(buffers), int(sum(b.nbytes for b in buffers.values())), dict(ops))


class op_counter:
    """Count the ops run inside a ``with`` block, and how many of their results are still alive.

        with tt.op_counter() as ops:
            loss = model(x)
        print(ops)            # "12 ops ran (add 3, matmul 2, ...); still alive: 12 results, 3.1 KiB"
        loss.backward()
        print(ops.alive())    # (1, 4): only the loss itself is left

    Counting starts at ``__enter__`` and stops at ``__exit__``; ``alive()`` can be asked any time after.
    """

    def __init__(self):
        self.counts = collections.Counter()
        self._refs = []

    def _hook(self, out, op, parents):
        self.counts[op] += 1
        self._refs.append(weakref.ref(out))

    def __enter__(self):
        _hooks.append(self._hook)
        return self

    def __exit__(self, *exc):
        for i in range(len(_hooks) - 1, -1, -1):
            if _hooks[i] == self._hook:
                del _hooks[i]
                break
        return False

    @property
    def total(self):
        return sum(self.counts.values())

    def alive(self):
        """(results still alive, bytes of their outputs, each buffer once)."""
        gc.collect()
        buffers = {}
        n = 0
        for ref in self._refs:
            t = ref()
            if t is not None:
                n += 1
                root = _root_buffer(t.data)
                buffers[id(root)] = root
        return n, int(sum(b.nbytes for b in buffers.values()))

    def __str__(self):
        n, b = self.alive()
        detail = ", ".join(f"{name} {c}" for name, c in sorted(self.counts.items()))
        return f"{self.total} ops ran ({detail}); still alive: {n} results, {fmt_bytes(b)}"
