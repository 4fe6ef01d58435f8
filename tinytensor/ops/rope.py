"""Rotary position embeddings (RoPE): each pair of a query's or key's features turned by an angle that
grows with the position, so that q . k depends on how far apart two tokens are, not where they are.

Its composed twin: ``reference.rope``. The layout is Hugging Face's "rotate_half": the last axis of
x (..., D) is cut into halves x1 = x[..., :D/2] and x2 = x[..., D/2:], and feature i of one half pairs
with feature i of the other. With c = cos(angle), s = sin(angle) of that pair:

    out1 = x1 c - x2 s          (in the twin: out = x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1],
    out2 = x2 c + x1 s           with cos and sin repeated over both halves)

A rotation's derivative is the rotation itself, and the gradient goes through its transpose, the
rotation by minus the angle:  dx1 = g1 c + g2 s,  dx2 = g2 c - g1 s.  So backward is forward with -s.

The angles (``rope_tables``): pair i at position p turns by p * inv_freq_i with inv_freq_i =
theta^(-2i/D): the first pairs turn fast (they tell near positions apart), the last ones slowly.
Llama 3 stretches the slow ones (``llama3_frequencies``) so a model trained on 8k tokens reads 128k.

The plain rung, at the top of this file: ``plain_rope`` and ``plain_rope_backward``
(``reference.PLAIN["rope"]``): NumPy in and out, the backward written by hand from the formulas.
"""
import math

import numpy as np

from .. import backend, config, twins as reference
from ..tensor import Tensor

# ----- the angles -----


def rope_frequencies(head_dim, theta=10000.0, scaling=None):
    """inv_freq (head_dim // 2,) in float64: theta^(-2i / head_dim), then Llama 3's scaling when
    ``scaling`` is given (a dict with factor, low_freq_factor, high_freq_factor and
    original_context_length, see ``llama3_frequencies``)."""
    if isinstance(head_dim, bool) or not isinstance(head_dim, (int, np.integer)) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"rope: head_dim must be an even number >= 2, got {head_dim!r}")
    if not (isinstance(theta, (int, float)) and math.isfinite(theta) and theta > 1):
        raise ValueError(f"rope: theta must be a finite number above 1, got {theta!r}")
    inv_freq = 1.0 / float(theta) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    return llama3_frequencies(inv_freq, **scaling) if scaling else inv_freq


def llama3_frequencies(inv_freq, factor, low_freq_factor, high_freq_factor, original_context_length):
    """Llama 3.1's frequency scaling: wavelengths (2 pi / inv_freq, in tokens) shorter than
    original_context_length / high_freq_factor are kept, those longer than original_context_length /
    low_freq_factor are stretched ``factor`` times, and the ones between are blended smoothly."""
    if not (factor >= 1 and 0 < low_freq_factor < high_freq_factor and original_context_length > 0):
        raise ValueError(f"rope: Llama 3 scaling needs factor >= 1, 0 < low_freq_factor < high_freq_factor and "
                         f"original_context_length > 0; got {factor}, {low_freq_factor}, {high_freq_factor}, "
                         f"{original_context_length}")
    wavelen = 2 * math.pi / inv_freq
    # 0 where the wavelength is long (stretched fully) .. 1 where it is short (kept), linear in 1 / wavelen
    smooth = (original_context_length / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smooth = np.clip(smooth, 0.0, 1.0)
    return (1 - smooth) * inv_freq / factor + smooth * inv_freq


def rope_tables(head_dim, positions, theta=10000.0, scaling=None, dtype=np.float32, device="cpu"):
    """(cos, sin), each (len(positions), head_dim // 2), for ``rope``. ``positions``: a count T
    (positions 0..T-1) or a sequence of positions. Computed in float64, then cast to ``dtype``."""
    pos = np.arange(positions, dtype=np.float64) if np.ndim(positions) == 0 else np.asarray(positions, np.float64)
    angles = np.outer(pos, rope_frequencies(head_dim, theta, scaling))     # (T, D/2)
    xp = backend.xp_for(device)
    return xp.asarray(np.cos(angles).astype(dtype)), xp.asarray(np.sin(angles).astype(dtype))


# ----- the plain rung: NumPy arrays in, (output, cache) out; the backward by hand, from the formulas -----


def plain_rope(x, cos, sin):
    """out1 = x1 c - x2 s, out2 = x2 c + x1 s on the halves x1, x2 of the last axis; cos, sin (..., D/2)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1), (cos, sin)


def plain_rope_backward(g, cache):
    """The rotation's transpose: dx1 = g1 c + g2 s, dx2 = g2 c - g1 s (the tables are constants)."""
    cos, sin = cache
    h = g.shape[-1] // 2
    g1, g2 = g[..., :h], g[..., h:]
    return (np.concatenate([g1 * cos + g2 * sin, g2 * cos - g1 * sin], axis=-1),)


# ----- the math: a rotation, on half views -----

def _rotate(x1, x2, c, s, out1, out2):
    """out1 = x1 c - x2 s, out2 = x2 c + x1 s (turn each pair by the angle; with -s, turn it back)."""
    xp = backend.xp_of(x1)
    tmp = xp.multiply(x2, s)
    xp.multiply(x1, c, out=out1)
    out1 -= tmp
    xp.multiply(x1, s, out=tmp)
    xp.multiply(x2, c, out=out2)
    out2 += tmp


# ----- the op -----

def _table(value, like, name):
    data = value.data if isinstance(value, Tensor) else value
    if not hasattr(data, "shape"):
        raise TypeError(f"rope: {name} must be an array or tensor (see F.rope_tables), got {type(value).__name__}")
    xp = backend.xp_of(like)
    if backend.xp_of(data) is not xp:
        raise RuntimeError(f"rope: {name} and the input are on different devices; make the tables with "
                           "device= the input's")
    return xp.asarray(data, dtype=like.dtype)


def rope(x, cos, sin):
    """x (..., T, D) with each pair (x[..., i], x[..., i + D/2]) turned by the angle whose cosine and sine
    are cos[..., i] and sin[..., i], (T, D/2) or any shape that broadcasts against x[..., :D/2]
    (``rope_tables`` makes them). The tables are constants: no gradient reaches them."""
    D = x.shape[-1] if x.ndim else 0
    if D < 2 or D % 2:
        raise ValueError(f"rope: the last axis must have an even length >= 2, got shape {x.shape}")
    c, s = _table(cos, x.data, "cos"), _table(sin, x.data, "sin")
    half = x.shape[:-1] + (D // 2,)
    for name, t in (("cos", c), ("sin", s)):
        try:
            if np.broadcast_shapes(t.shape, half) != half:
                raise ValueError
        except ValueError:
            raise ValueError(f"rope: {name} of shape {tuple(t.shape)} does not broadcast against the halves "
                             f"{half} of the input {x.shape}") from None
    if config.reference_ops:
        return reference.rope(x, c, s)
    xp = backend.xp_of(x.data)
    h = D // 2
    d = x.data
    out = xp.empty(d.shape, dtype=d.dtype)
    _rotate(d[..., :h], d[..., h:], c, s, out[..., :h], out[..., h:])

    def backward(g):       # the transpose of the rotation: the same turn by minus the angle
        gx = xp.empty(d.shape, dtype=d.dtype)
        _rotate(g[..., :h], g[..., h:], c, -s, gx[..., :h], gx[..., h:])
        return (gx,)
    return Tensor._make(out, (x,), backward, "rope", twin=lambda: reference.rope(x, c, s))

