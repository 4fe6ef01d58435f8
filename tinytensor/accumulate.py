"""How ``backward()`` sums the gradients that reach one tensor from its several uses.

The plain rule is ``grads[t] = grads[t] + g`` for every use of ``t``, with a new array each time. Two
tricks save memory passes on top of it. Each was measured again against the plain rule, variants
alternating in one process (benchmarks/RESULTS.md, "A short core"): on the q, k, v slices alone dropping
the first costs +50%, dropping the second +40%; on a whole tiny GPT step +3% and +4% (both: +6%).

1. **Slices go straight into one buffer.** ``x[index]`` (basic indexing) gives back a ``SliceGrad``: the
   gradient of the selected region only, not a zero-filled array of ``x``'s shape. The three slices q, k, v
   of a fused qkv projection then cost one zero-filled buffer and three writes into it, instead of three
   full-size zero arrays and two full-size sums.
2. **In place only into arrays this pass made.** A backward may hand the same array to several inputs
   (``add`` gives ``g`` to both), so an array received from a backward is never written to. The first sum
   for a tensor makes a new array; that one belongs to this pass (``_ours``), and later contributions
   (the third slice, a third use) are added into it in place.

Anything outside this module sees plain arrays: ``pop`` turns a lone ``SliceGrad`` into a full array.
"""
import numpy as np

from . import backend


class SliceGrad:
    """A gradient that is zero except in one region picked by basic indexing: what ``x[index]`` gives back
    to ``x``. ``dense()`` is the full array, laid out in memory like ``x``'s data (so a later transpose or
    reshape of it costs no copy)."""
    __slots__ = ("like", "index", "values")

    def __init__(self, like, index, values):
        self.like, self.index, self.values = like, index, values

    def dense(self):
        grad = backend.xp_of(self.values).zeros_like(self.like, dtype=self.values.dtype)
        grad[self.index] = self.values
        return grad


def dense(g):
    """``g`` as a plain array (a ``SliceGrad`` made full)."""
    return g.dense() if isinstance(g, SliceGrad) else g


def writable(a):
    """NumPy gives 0-d results back as scalars (``np.float64``), which cannot be added into in place."""
    return np.asarray(a) if isinstance(a, np.generic) else a


class GradientSums:
    """The gradients one backward pass is summing, by tensor, until the walk reaches that tensor."""

    def __init__(self, root, grad):
        self._grads = {id(root): grad}
        self._ours = set()      # ids whose array this pass made itself: safe to add into in place

    def pop(self, tensor):
        """The finished gradient of ``tensor`` as a plain array, or None when nothing reached it."""
        self._ours.discard(id(tensor))
        return dense(self._grads.pop(id(tensor), None))

    def add(self, tensor, g):
        """Add one more contribution ``g`` (an array or a ``SliceGrad``) to ``tensor``'s gradient."""
        key = id(tensor)
        have = self._grads.get(key)
        if have is None:
            self._grads[key] = g
            return
        if key not in self._ours:           # the first sum: into a new array, which is then ours
            self._ours.add(key)
            if isinstance(have, SliceGrad):
                have, g = g, have           # keep the dense one, if any, as the base
            if isinstance(have, SliceGrad):
                have = have.dense()         # two slices: a zero buffer holding the first
            elif isinstance(g, SliceGrad):
                have = writable(have.copy())
            else:
                self._grads[key] = writable(have + g)
                return
        if isinstance(g, SliceGrad):
            have[g.index] += g.values
        elif have.shape == g.shape and have.dtype == g.dtype:
            have += g
        else:                               # a shape or dtype that in-place addition would change
            have = writable(have + g)
        self._grads[key] = have
