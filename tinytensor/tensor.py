"""The Tensor: an array plus the recipe that made it, and reverse-mode autodiff over those recipes.

Every op returns a new Tensor that remembers its inputs (``_parents``) and a function
(``_backward``) that turns the gradient of the output into gradients of the inputs. Calling
``loss.backward()`` visits the graph from the loss back to the leaves in reverse topological
order and adds each gradient into the leaf's ``.grad``.
"""
import threading

import numpy as np

from . import backend

_grad_enabled = True
_hooks = []            # callables run on every new op result: (tensor, op_name, parents) -> None
_backward_hooks = []   # callables run after each op's backward: (node, grad_out, input_grads) -> None
_pass = threading.local()  # .callbacks: while this thread runs backward(), what runs when it ends (queue_final_callback)


class SliceGrad:
    """A gradient that is zero except in one region picked by basic indexing: what ``x[index]`` gives back
    to ``x``. The backward pass adds it straight into the gradient it accumulates for ``x``, so three
    slices of one tensor (q, k, v from a fused projection) cost one buffer, not three zero-filled copies
    and two sums. Anything else that sees it gets the full array from ``dense()``."""
    __slots__ = ("like", "index", "values")

    def __init__(self, like, index, values):
        self.like, self.index, self.values = like, index, values

    def dense(self):
        """The gradient as an array shaped (and laid out in memory) like the sliced tensor's data."""
        grad = backend.xp_of(self.values).zeros_like(self.like, dtype=self.values.dtype)
        grad[self.index] = self.values
        return grad


def _dense(g):
    return g.dense() if isinstance(g, SliceGrad) else g


def _writable(a):
    """NumPy gives 0-d results back as scalars (``np.float64``), which cannot be added into in place."""
    return np.asarray(a) if isinstance(a, np.generic) else a


def _accumulate(grads, owned, key, g):
    """Add gradient ``g`` into ``grads[key]``. Arrays this function made itself (``owned``) are added to in
    place; any other array may be shared with another tensor's gradient and is never written to."""
    if key not in grads:
        grads[key] = g
        return
    have = grads[key]
    if key not in owned:
        # make an array of our own from the two: a slice goes into a copy of the other one
        if isinstance(have, SliceGrad):
            have, g = g, have
        if isinstance(have, SliceGrad):
            have = have.dense()
        elif isinstance(g, SliceGrad):
            have = _writable(have.copy())
        else:
            grads[key] = _writable(have + g)
            owned.add(key)
            return
        owned.add(key)
    if isinstance(g, SliceGrad):
        have[g.index] += g.values
    elif getattr(have, "shape", None) == g.shape and have.dtype == g.dtype:
        have += g
    else:                                   # a shape or dtype that in-place addition would change: add anew
        have = _writable(have + g)
    grads[key] = have


class no_grad:
    """Context manager (and decorator) that records no graph: ops inside return plain tensors."""

    def __enter__(self):
        global _grad_enabled
        self._previous, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return _grad_enabled


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
    array; ``.grad`` holds the gradient after ``backward()``. Treat ``.grad`` as read-only: a backward
    pass may hand the same array to several tensors, so assign a new array rather than editing it.
    """

    __array_ufunc__ = None     # make NumPy hand `np_array * tensor` to Tensor.__rmul__

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        self.data = _to_array(data, _check_dtype(dtype), device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, not {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._parents = ()
        self._backward = None
        self._op = None
        self._retain = False

    @classmethod
    def _make(cls, data, parents, backward, op):
        """Wrap an op's result; remember the inputs and the backward only when a gradient is needed."""
        out = cls.__new__(cls)
        if isinstance(data, np.generic):    # NumPy turns 0-d results into scalars; keep .data an array
            data = np.asarray(data)
        out.data, out.grad, out._op, out._retain = data, None, op, False
        out.requires_grad = _grad_enabled and any(p.requires_grad for p in parents)
        if out.requires_grad:
            out._parents, out._backward = parents, backward
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
        out.data, out.grad, out.requires_grad = data, None, requires_grad
        out._parents, out._backward, out._op, out._retain = (), None, None, False
        return out

    def requires_grad_(self, flag=True):
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, not {self.dtype}")
        self.requires_grad = bool(flag)
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor during backward (leaves always keep theirs)."""
        self._retain = True
        return self

    def to(self, device_or_dtype):
        """A copy on another device ("cpu"/"cuda") or with another dtype; differentiable."""
        from .ops.elementwise import astype, to_device
        try:
            dtype = np.dtype(device_or_dtype) if not str(device_or_dtype).startswith(("cpu", "cuda")) else None
        except TypeError:
            dtype = None
        return astype(self, dtype) if dtype is not None else to_device(self, device_or_dtype)

    def astype(self, dtype):
        from .ops.elementwise import astype
        return astype(self, np.dtype(dtype))

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def zero_grad(self):
        self.grad = None

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` during ``backward()`` right after this leaf's ``.grad`` has received its last
        contribution of that pass (as PyTorch's hook of the same name). Returns a handle: ``handle.remove()``."""
        if not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors (parameters) accumulate .grad")
        return _HookHandle(self.__dict__.setdefault("_grad_hooks", {}), hook)

    # ----- backpropagation -----
    def backward(self, grad=None, retain_graph=False, trace=False):
        """Backpropagate from this tensor: add d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is the gradient of some final scalar with respect to this tensor; it may be left out
        only when this tensor holds one element. The graph is freed afterwards unless
        ``retain_graph=True``. ``trace=True`` prints each step as it runs (see ``tinytensor.trace``).
        Callables queued with ``queue_final_callback`` during the pass run once it has ended.
        """
        outer, _pass.callbacks = getattr(_pass, "callbacks", None), []
        callbacks = _pass.callbacks
        try:
            self._backward_pass(grad, retain_graph, trace)
        finally:
            _pass.callbacks = outer         # a pass that raised drops what it queued
        for fn in callbacks:
            fn()

    def _backward_pass(self, grad, retain_graph, trace):
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad; create an input with "
                               "requires_grad=True and compute from it")
        xp = backend.xp_of(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() on a tensor of shape {self.shape} needs a gradient of that "
                                   "shape; call backward(grad) or reduce to a scalar first (e.g. .sum())")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {self.shape}")
        printer = None
        if trace:
            from .trace import TracePrinter
            printer = TracePrinter()
        order = topological_order(self)
        grads = {id(self): grad}
        owned = set()       # keys whose gradient array was made here (safe to add into in place)
        for node in reversed(order):
            g = _dense(grads.pop(id(node), None))
            owned.discard(id(node))
            if g is None:
                continue
            if node._backward is None or node._retain:
                node.grad = _writable(g if node.grad is None else node.grad + g)
                if node._backward is None:
                    for hook in tuple(node.__dict__.get("_grad_hooks", {}).values()):
                        hook(node)          # this leaf's .grad is final for this pass
                    if printer:
                        printer.leaf(node, g)
                    continue
            input_grads = node._backward(g)
            if _backward_hooks or printer:          # instruments see plain arrays
                input_grads = tuple(_dense(pg) for pg in input_grads)
            for hook in _backward_hooks:
                hook(node, g, input_grads)
            if printer:
                printer.step(node, g, input_grads)
            for parent, pg in zip(node._parents, input_grads):
                if pg is None or not parent.requires_grad:
                    continue
                _accumulate(grads, owned, id(parent), pg)
            if not retain_graph:
                node._backward, node._parents = _freed, ()

    # operators and methods are attached in tinytensor/ops/methods.py


class _HookHandle:
    """What ``register_post_accumulate_grad_hook`` returns; ``remove()`` unregisters the hook."""

    def __init__(self, hooks, hook):
        self._hooks = hooks
        hooks[self] = hook

    def remove(self):
        self._hooks.pop(self, None)


def queue_final_callback(fn):
    """Run ``fn()`` once, right after the ``backward()`` now running has ended (PyTorch's engine
    ``queue_callback``): a gradient hook queues the work that needs every gradient of the pass, such as
    DistributedDataParallel's wait for its all-reduces. Outside a backward pass it raises RuntimeError."""
    callbacks = getattr(_pass, "callbacks", None)
    if callbacks is None:
        raise RuntimeError("queue_final_callback() works only while backward() runs, e.g. from a gradient hook")
    callbacks.append(fn)


def topological_order(root):
    """Every tensor that ``root`` depends on (needing grad), inputs before outputs; no recursion.

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
