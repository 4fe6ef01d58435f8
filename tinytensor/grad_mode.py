"""Grad mode: whether ops record a graph, switched per thread as in PyTorch.

    with tt.no_grad(): ...              # nothing inside records a graph (evaluation, sampling)
    with tt.enable_grad(): ...          # recording on again, inside a no_grad block
    tt.set_grad_enabled(False)          # switch for the rest of this thread; also a context manager

The switch belongs to the thread that sets it: ``no_grad`` held in one thread leaves ops in every other
thread recording, and a new thread starts with recording on.
"""
import functools
import threading


class _Mode(threading.local):
    enabled = True          # a class attribute: the value every thread sees until it sets its own


_mode = _Mode()


def is_grad_enabled():
    """True unless this thread is inside ``no_grad()`` (or switched recording off)."""
    return _mode.enabled


class _GradMode:
    """A context manager and decorator that sets this thread's mode on entry and restores it on exit."""

    enabled = True

    def __enter__(self):
        self._previous, _mode.enabled = _mode.enabled, self.enabled
        return self

    def __exit__(self, *exc):
        _mode.enabled = self._previous
        return False

    def __call__(self, fn):
        enabled = self.enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(enabled):     # a fresh manager per call: calls may nest or run in threads
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Context manager (and decorator) that records no graph: ops inside return plain tensors."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager (and decorator) that turns recording back on, e.g. inside ``no_grad``."""

    enabled = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(flag)`` switches recording on or off in this thread at once; used in a ``with``
    it restores the previous mode at the end; used as a decorator it applies to each call only."""

    def __init__(self, mode):
        self.enabled = bool(mode)
        self._previous, _mode.enabled = _mode.enabled, self.enabled

    def __enter__(self):
        return self             # __init__ already switched; __exit__ restores what was there before

    def __call__(self, fn):
        _mode.enabled = self._previous      # as a decorator it must not change the mode of the caller
        return super().__call__(fn)
