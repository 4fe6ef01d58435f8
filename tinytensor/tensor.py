"""The Tensor: an array plus the recipe that made it, and reverse-mode autodiff over those recipes.

Every op returns a new Tensor that remembers its inputs (``_parents``) and a function
(``_backward``) that turns the gradient of the output into gradients of the inputs. Calling
``loss.backward()`` visits the graph from the loss back to the leaves in reverse topological
order and adds each gradient into the leaf's ``.grad``.

Beside it: ``accumulate.py`` (how the gradients from several uses of a tensor are summed),
``versions.py`` (backward refuses inputs changed after use), ``grad_mode.py`` (``no_grad``, per
thread), ``function.py`` (``tt.Function``, the public way to add an op; ops inside the package call
``Tensor._make`` directly).
"""
import contextlib
import itertools
import operator
import threading

import numpy as np

from . import backend, versions
from .accumulate import GradientSums, SliceGrad, TensorSums, dense, writable  # noqa: F401 (SliceGrad: for the ops)
from .grad_mode import _mode, enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401

_hooks = []            # callables run on every new op result: (tensor, op_name, parents) -> None
_backward_hooks = []   # callables run after each op's backward: (node, grad_out, input_grads) -> None
_pass = threading.local()  # .callbacks: while this thread runs backward(), what runs when it ends (queue_final_callback)


def _check_dtype(dtype):
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"unknown dtype {dtype!r}: use a NumPy dtype or its name, like 'float32'") from exc


def _to_array(data, dtype, device):
    """Turn user data into an array on ``device``; floats become float32 unless ``dtype`` says otherwise."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (list, tuple)):
        try:
            data = np.array([d.data if isinstance(d, Tensor) else d for d in data])
        except ValueError as exc:
            raise ValueError(f"tensor(): ragged nested list, every row must have the same length ({exc})") from exc
        if data.dtype == object:
            raise ValueError("tensor(): ragged nested list, every row must have the same length")
    source = backend.device_of(data) if hasattr(data, "dtype") else "cpu"
    device = backend.check_device(device) if device is not None else source
    xp = backend.xp_for(source)
    array = xp.asarray(data)
    if dtype is None:
        kind = array.dtype.kind
        if kind == "f":
            dtype = np.float32
        elif kind in "iu" and not hasattr(data, "dtype"):
            dtype = np.int64
        elif kind not in "biu":
            raise TypeError(f"tensor(): cannot make a tensor of dtype {array.dtype}")
    if dtype is not None and array.dtype != dtype:    # (dtype None here: keep ints and bools as they are)
        array = array.astype(dtype)
    return backend.to_device(array, device)


def _freed(grad):
    raise RuntimeError("backward through a graph that was already freed: pass retain_graph=True to the "
                       "first backward() if you need to go through it twice")


class Tensor:
    """An n-dimensional array that can record how it was computed, for automatic gradients.

    Build one with ``tt.tensor(data, requires_grad=...)``. ``.data`` is the backing NumPy (or CuPy)
    array; ``.grad`` holds the gradient after ``backward()`` (a Tensor with a graph of its own after
    ``backward(create_graph=True)``). Treat ``.grad`` as read-only: a backward
    pass may hand the same array to several tensors, so assign a new array rather than editing it.
    """

    __array_ufunc__ = None     # make NumPy hand `np_array * tensor` to Tensor.__rmul__
    _changed_at = 0            # tick of the last change through the Tensor API (0: none since creation)
    _saved = None              # an op node's tensors its backward reads (None: all inputs and the result)
    _vjp = None                # a primitive op's backward written in Tensor ops (what create_graph=True runs)
    _twin = None               # a fused op's forward again, by its composed twin in reference.py (idem)
    _post_accumulate_grad_hooks = None

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        self._data = _to_array(data, _check_dtype(dtype), device)
        self.requires_grad = requires_grad
        self.grad = None
        self._parents = ()
        self._backward = None
        self._op = None
        self._retain = False

    def _set_data(self, array):
        self._data = array
        self._mark_changed()

    def _mark_changed(self):
        """Record that ``.data``'s array was changed in place (an optimizer step does this): backward
        through an op that used this tensor before then refuses (see ``Tensor.data``)."""
        versions.mark_changed(self)

    data = property(operator.attrgetter("_data"), _set_data, doc="""The backing array (NumPy, or CuPy on "cuda").

    Changing a tensor after an op used it makes that op's backward wrong, so ``backward()`` checks, as
    PyTorch does, and raises naming the op and the tensor's shape. What is caught:

    - always (no cost worth measuring): every change made through the Tensor API after the op ran:
      assigning ``x.data = array``, augmented assignment ``x.data += 1`` / ``x.data -= lr * g`` (Python
      assigns the result back), and optimizer steps (SGD and AdamW mark the parameters they update);
    - under ``tt.detect_anomaly()`` (forward and backward inside it), also writes straight into the array,
      ``x.data[:] = 10``, ``np.add(x.data, 1, out=x.data)``, or through another view of the same memory: each
      op fingerprints its inputs' and its result's bytes (CRC-32) and backward compares.

    Not caught outside ``detect_anomaly``: writes into the array itself (NumPy has no cheap way to tell
    that an array changed); after such a write, call ``x.data = x.data`` to mark the change.
    """)

    def _set_requires_grad(self, flag):
        if flag and self._data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, not {self._data.dtype}")
        self._requires_grad = bool(flag)

    requires_grad = property(operator.attrgetter("_requires_grad"), _set_requires_grad,
                             doc="Whether backward() computes a gradient for this tensor (floating point only).")

    @classmethod
    def _make(cls, data, parents, backward, op, vjp=None, twin=None):
        """Wrap an op's result; remember the inputs and the backward only when a gradient is needed.

        ``backward`` works on arrays. For ``backward(create_graph=True)`` a primitive op also gives ``vjp``,
        its backward in Tensor ops (``backward`` itself where that already takes a Tensor), and a fused op
        gives ``twin``, a call of its composed twin on the same inputs, whose graph is then differentiated."""
        out = cls.__new__(cls)
        if isinstance(data, np.generic):    # NumPy turns 0-d results into scalars; keep .data an array
            data = np.asarray(data)
        out._data, out.grad, out._op, out._retain = data, None, op, False
        out._requires_grad = _mode.enabled and any(p._requires_grad for p in parents)
        if out._requires_grad:
            out._parents, out._backward, out._made_at = parents, backward, versions.tick()
            if vjp is not None or twin is not None:
                out._vjp, out._twin = vjp, twin
        else:
            out._parents, out._backward = (), None
        for hook in _hooks:
            hook(out, op, parents)
        return out

    # ----- what a tensor is -----
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._backward is None

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        extra = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{dev}{extra})"

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data)

    def __hash__(self):
        return id(self)

    # ----- leaving the graph -----
    def numpy(self):
        """A host NumPy array of the values (copied from the GPU when needed)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The single value as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same values with no history (shares memory with this tensor)."""
        return Tensor._plain(self.data)

    @classmethod
    def _plain(cls, data, requires_grad=False):
        out = cls.__new__(cls)
        out._data, out.grad, out._requires_grad = data, None, False
        out._parents, out._backward, out._op, out._retain = (), None, None, False
        if requires_grad:
            out.requires_grad = True        # the setter refuses integer data
        return out

    def requires_grad_(self, flag=True):
        self.requires_grad = flag
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor during backward (leaves always keep theirs)."""
        self._retain = True
        return self

    # to() and astype() are ops: ops/methods.py attaches them (tensor.py imports no op)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def zero_grad(self):
        self.grad = None

    # ----- backpropagation -----
    def backward(self, grad=None, retain_graph=None, trace=False, create_graph=False):
        """Backpropagate from this tensor: add d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is the gradient of some final scalar with respect to this tensor; it may be left out
        only when this tensor holds one element. The graph is freed afterwards unless
        ``retain_graph=True``. ``trace=True`` prints each step as it runs (see ``tinytensor.trace``).
        Callables queued with ``queue_final_callback`` during the pass run once it has ended.

        ``create_graph=True`` records the pass itself: each op's backward runs in Tensor ops, so every
        ``.grad`` it writes is a Tensor with a graph of its own, differentiable again (second derivatives,
        to any order; see also ``tt.grad``). ``retain_graph`` then defaults to True, as in PyTorch.
        """
        retain_graph = create_graph if retain_graph is None else retain_graph
        outer, _pass.callbacks = getattr(_pass, "callbacks", None), []
        callbacks = _pass.callbacks
        try:
            self._backward_pass(grad, retain_graph, trace, create_graph)
        finally:
            _pass.callbacks = outer         # a pass that raised drops what it queued
        for fn in callbacks:
            fn()

    def _backward_pass(self, grad, retain_graph, trace, create_graph=False, capture=None, stop=()):
        """The pass itself: the topological walk and the chain rule.

        With ``create_graph`` the gradients are Tensors and each step is recorded (``_graph_step``).
        ``capture`` (``tt.grad``) maps the ids of the tensors whose gradients are wanted to None, filled in
        there instead of any ``.grad``; the walk does not go past the tensors whose ids are in ``stop``."""
        printer = _trace_printer() if trace else None
        seed = self._seed_gradient(grad)
        if create_graph:
            grads = TensorSums(self, grad if isinstance(grad, Tensor) else Tensor._plain(seed))
        else:
            grads = GradientSums(self, seed)
        with enable_grad() if create_graph else contextlib.nullcontext():
            for node in reversed(topological_order(self, stop)):    # every use of a tensor before the tensor
                g = grads.pop(node)                             # dL/d(node), all its uses summed
                if g is None:
                    continue
                if capture is not None:
                    if id(node) in capture:
                        capture[id(node)] = g
                elif node.is_leaf or node._retain:
                    node.grad = writable(g if node.grad is None else node.grad + g)
                if node.is_leaf or (stop and id(node) in stop):
                    if capture is None:
                        _leaf_done(node, g, printer)            # its trace line and post-accumulate-grad hooks
                    continue
                if versions.last_change > node._made_at:       # some tensor changed since this op ran
                    versions.check_unchanged(node)
                # the chain rule: dL/d(input) from dL/d(node)
                input_grads = _graph_step(node, g) if create_graph else node._backward(g)
                if _backward_hooks or printer:
                    input_grads = _instrument(node, g, input_grads, printer)
                for parent, pg in zip(node._parents, input_grads):
                    if pg is not None and parent.requires_grad:
                        grads.add(parent, pg)
                if not retain_graph:
                    node._backward, node._parents, node._vjp, node._twin = _freed, (), None, None

    def _seed_gradient(self, grad):
        """The gradient backward() starts from: ones for a one-element tensor, else the given one, checked."""
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad; create an input with "
                               "requires_grad=True and compute from it")
        xp = backend.xp_of(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() on a tensor of shape {self.shape} needs a gradient of that "
                                   "shape; call backward(grad) or reduce to a scalar first (e.g. .sum())")
            return xp.ones_like(self.data)
        grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {self.shape}")
        return grad

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` in every ``backward()`` right after this leaf's ``.grad`` got its last
        contribution of that pass (data parallelism starts averaging a gradient there). Returns a handle;
        ``handle.remove()`` takes the hook off."""
        if self._backward is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors (parameters, inputs) "
                               "accumulate a .grad; this one was made by an op")
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: this tensor does not require grad")
        if self._post_accumulate_grad_hooks is None:
            self._post_accumulate_grad_hooks = {}
        return RemovableHandle(self._post_accumulate_grad_hooks, hook)

    # operators and methods are attached in tinytensor/ops/methods.py


class RemovableHandle:
    """What a ``register_*_hook`` call returns: ``handle.remove()`` takes the hook off again."""
    _ids = itertools.count()

    def __init__(self, hooks, hook):
        self._hooks, self._id = hooks, next(self._ids)
        hooks[self._id] = hook

    def remove(self):
        self._hooks.pop(self._id, None)


_trace_printers = []   # trace.py puts its TracePrinter here: trace reads the graph, tensor imports no trace


def _trace_printer():
    return _trace_printers[0]()


def _leaf_done(leaf, g, printer):
    """A leaf's ``.grad`` is complete for this pass: print it when tracing, run its hooks."""
    if printer:
        printer.leaf(leaf, g.data if isinstance(g, Tensor) else g)
    for hook in tuple((leaf._post_accumulate_grad_hooks or {}).values()):
        hook(leaf)


def _instrument(node, g, input_grads, printer):
    """Show one backward step to the instruments (anomaly checks, profilers, the trace), as plain arrays."""
    arrays = tuple(pg.data if isinstance(pg, Tensor) else dense(pg) for pg in input_grads)
    for hook in _backward_hooks + ([printer.step] if printer else []):
        hook(node, g.data if isinstance(g, Tensor) else g, arrays)
    return input_grads if isinstance(g, Tensor) else arrays


def _graph_step(node, g):
    """One step of a ``create_graph`` pass: ``node``'s backward in Tensor ops, so that it is recorded. A
    fused op's forward runs again as its composed twin, whose graph a nested pass differentiates."""
    if node._backward is _freed:
        _freed(g)
    if node._vjp is not None:
        return node._vjp(g)
    if node._twin is None:
        raise RuntimeError(f"backward(create_graph=True): '{node._op}' has no backward in Tensor ops (a "
                           "tt.Function's works on arrays, as do GPU kernels and attention with dropout), so "
                           "its gradient cannot be differentiated again")
    got = dict.fromkeys(map(id, node._parents))
    node._twin()._backward_pass(g, True, False, True, got, stop=frozenset(got))
    firsts = {id(p): i for i, p in reversed(list(enumerate(node._parents)))}   # an input used twice: once
    return tuple(got[id(p)] if firsts[id(p)] == i else None for i, p in enumerate(node._parents))


def queue_final_callback(fn):
    """Run ``fn()`` once, right after the ``backward()`` now running has ended (PyTorch's engine
    ``queue_callback``): a gradient hook queues the work that needs every gradient of the pass, such as
    DistributedDataParallel's wait for its all-reduces. Outside a backward pass it raises RuntimeError."""
    callbacks = getattr(_pass, "callbacks", None)
    if callbacks is None:
        raise RuntimeError("queue_final_callback() works only while backward() runs, e.g. from a gradient hook")
    callbacks.append(fn)


def topological_order(root, stop=()):
    """Every tensor that ``root`` depends on (needing grad), inputs before outputs; no recursion. The
    inputs of the tensors whose ids are in ``stop`` are left out (unless reached another way).

    A depth-first walk with an explicit stack: a node is written out only after all its inputs. A node's
    leaf inputs (parameters) go on the stack below its other inputs, so they are written out right before
    the node: backward, walking the list in reverse, reaches a parameter right after its last use, and the
    hooks that wait for its final gradient (DistributedDataParallel's) can start work while backward goes
    on. (The other nodes keep their order, so the sums of gradients are the same.)
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if stop and id(node) in stop:
            continue
        for leaves in (True, False):
            for parent in node._parents:
                if parent.requires_grad and id(parent) not in visited and (parent._backward is None) == leaves:
                    stack.append((parent, False))
    return order


def tensor(data, requires_grad=False, dtype=None, device=None):
    """Make a tensor from a list, a number or an array. Python floats default to float32.

    ``dtype`` takes a NumPy dtype or its name; ``device`` is "cpu" (default: where the data is) or "cuda".
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)
