"""Version checks: backward refuses to run an op whose inputs (or result) changed after the op ran.

An op's backward reads its inputs' arrays when it runs, later than the forward: a tensor changed in
between would silently give the gradient at the new values (x = [1, 2, 3]; y = (x * x).sum(); x set to
10s; y.backward() would give [20, 20, 20], not [2, 4, 6]). PyTorch counts versions; here one clock
orders everything: each recorded op takes a tick (``made``), each change through the Tensor API
(``Tensor.data = ...``, an optimizer step) stamps the tensor with a tick, and backward refuses an op when
a tensor it reads carries a later stamp. What is and is not caught: see ``Tensor.data``.

The cost on the hot path is one tick per recorded op and one comparison per op in backward: the full
check runs only when some tensor changed after the op was made (``last_change``), which in a training
loop (step, then forward, then backward) never happens.
"""
import itertools
import threading

_clock = itertools.count(1)
_lock = threading.Lock()
last_change = 0         # the tick of the latest change to any tensor


def tick():
    """The next tick: later than everything that happened before."""
    return next(_clock)


def mark_changed(tensor):
    """Stamp ``tensor`` as changed now."""
    global last_change
    with _lock:                 # so that last_change is always the latest stamp, whichever thread wins
        tensor._changed_at = last_change = next(_clock)


def read_by_backward(node):
    """The tensors whose values ``node``'s backward reads: the ones a ``Function`` saved, else (an op made
    by ``Tensor._make``, which does not say) all its inputs and its result."""
    return node._saved if node._saved is not None else node._parents + (node,)


def check_unchanged(node):
    """Raise, naming the op and the tensor's shape, when a tensor ``node``'s backward reads changed after
    the op ran."""
    for t in read_by_backward(node):
        if t._changed_at > node._made_at:
            what = "its result" if t is node else "an input"
            raise RuntimeError(f"backward of '{node._op}': {what} of shape {t.shape} was changed in place "
                               "after the op used it; compute again from the changed values (or change a copy)")
