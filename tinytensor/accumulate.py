"""How ``backward()`` sums the gradients that reach one tensor from its several uses.

The plain rule is ``grads[t] = grads[t] + g`` for every use of ``t``, with a new array each time. Four
tricks save memory passes on top of it. The first two were measured again against the plain rule, variants
alternating in one process (benchmarks/RESULTS.md, "A short core"): on the q, k, v slices alone dropping
the first costs +50%, dropping the second +40%; on a whole tiny GPT step +3% and +4% (both: +6%). The
third took the q, k, v gradients of a tiny layer from 0.74 to 0.42 ms (RESULTS.md, "Session 6 — speed"), the
fourth the other sums of a tiny step from 1.5 to 1.0 ms, of a small one from 10 to 5 ms ("Session 7 — speed7").

1. **Slices go straight into one buffer.** ``x[index]`` (basic indexing) gives back a ``SliceGrad``: the
   gradient of the selected region only, not a zero-filled array of ``x``'s shape. The three slices q, k, v
   of a fused qkv projection then cost one zero-filled buffer and three writes into it, instead of three
   full-size zero arrays and two full-size sums.
2. **In place only into arrays this pass made.** A backward may hand the same array to several inputs
   (``add`` gives ``g`` to both), so an array received from a backward is never written to. The first sum
   for a tensor makes a new array; that one belongs to this pass (``_ours``), and later contributions
   (the third slice, a third use) are added into it in place.
3. **Slices that tile the tensor are written, not added.** Slices of one tensor wait (``Slices``) until
   its gradient is complete; when they cover it exactly once (q, k, v; the pieces of ``split``), the
   buffer is not zero-filled and each slice is copied into its place instead of added into zeros.
4. **A backward may give away its array.** ``Owned(a)`` says the backward made ``a`` for this input alone
   (layer norm's and RMSNorm's dx): where the residual stream meets, the gradient already there (the
   add's ``g``, shared with the other branch) is added into ``a`` in place, one pass over two arrays
   instead of a new sum.

Anything outside this module sees plain arrays: ``pop`` turns a ``SliceGrad`` (or waiting ``Slices``) into a full
array, and unwraps an ``Owned`` one.
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


class Owned:
    """A gradient array that one backward made for one input and keeps no reference to: the sum of that
    input's gradients may be taken in it, in place (trick 4)."""
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def dense(self):
        return self.array


class Slices:
    """Several ``SliceGrad``s of one tensor, waiting to be written into one buffer together."""
    __slots__ = ("parts",)

    def __init__(self, parts):
        self.parts = parts

    def dense(self):
        first = self.parts[0]
        xp = backend.xp_of(first.values)
        if _tile(first.like.shape, [part.index for part in self.parts]):
            grad = xp.empty_like(first.like, dtype=first.values.dtype)     # every element written below
            for part in self.parts:
                grad[part.index] = part.values
        else:
            grad = xp.zeros_like(first.like, dtype=first.values.dtype)
            for part in self.parts:
                grad[part.index] += part.values
        return grad


def _tile(shape, indices):
    """True when each basic index cuts one range out of the same axis (an int, or a slice of step 1; full
    slices elsewhere) and the ranges cover that axis exactly once, as ``qkv[0], qkv[1], qkv[2]`` do."""
    axis, ranges = None, []
    for index in indices:
        parts = index if isinstance(index, tuple) else (index,)
        if len(parts) > len(shape):
            return False
        cuts = []
        for k, part in enumerate(parts):
            if isinstance(part, slice):
                start, stop, step = part.indices(shape[k])
                if (start, stop, step) != (0, shape[k], 1):
                    cuts.append((k, start, stop if step == 1 and stop > start else None))
            elif isinstance(part, (int, np.integer)) and not isinstance(part, bool):
                cuts.append((k, int(part) % shape[k], int(part) % shape[k] + 1))
            else:                                   # Ellipsis, None, an array: not worth following
                return False
        if len(cuts) != 1 or cuts[0][2] is None:    # not exactly one cut axis, or an empty range
            return False
        k, start, stop = cuts[0]
        if axis is not None and k != axis:
            return False
        axis = k
        ranges.append((start, stop))
    covered = 0
    for start, stop in sorted(ranges):
        if start != covered:                        # a gap or an overlap
            return False
        covered = stop
    return axis is not None and covered == shape[axis]


def dense(g):
    """``g`` as a plain array (a ``SliceGrad`` or waiting ``Slices`` made full)."""
    return g.dense() if isinstance(g, (SliceGrad, Slices, Owned)) else g


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
        """Add one more contribution ``g`` (an array, a ``SliceGrad`` or an ``Owned``) to ``tensor``'s gradient."""
        key = id(tensor)
        have = self._grads.get(key)
        if isinstance(g, Owned):
            g = g.array
            if have is None or (key not in self._ours and not isinstance(have, (SliceGrad, Slices))
                                and have.shape == g.shape and have.dtype == g.dtype):
                if have is not None:
                    g += have                   # the sum in the array given away (trick 4)
                self._grads[key] = g
                self._ours.add(key)
                return
        if have is None:
            self._grads[key] = g
            return
        if isinstance(g, SliceGrad) and isinstance(have, (SliceGrad, Slices)):
            self._grads[key] = Slices((have.parts if isinstance(have, Slices) else [have]) + [g])
            return                          # slices wait: written together when complete (trick 3)
        if isinstance(have, Slices):        # a whole array meets waiting slices: write them out first
            have = self._grads[key] = have.dense()
            self._ours.add(key)
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


class TensorSums:
    """The sums of a ``create_graph`` pass: gradients are Tensors, added by the add op so that each sum is
    recorded too (none of the tricks above: they write into arrays)."""

    def __init__(self, root, grad):
        self._grads = {id(root): grad}

    def pop(self, tensor):
        return self._grads.pop(id(tensor), None)

    def add(self, tensor, g):
        have = self._grads.get(id(tensor))
        self._grads[id(tensor)] = g if have is None else have + g
