"""The ladder each fused op climbs, three rungs: read them in this order.

1. The composed twin (``twins.py``, re-exported here: ``reference.softmax``, ``reference.layer_norm``, ...):
   the textbook formula written with tinytensor's elementary ops (exp, sum, matmul, indexing, ...), so
   its gradient comes from those ops' own backward and nothing is hand-derived.
2. The plain rung (``PLAIN``, op name -> (forward, backward)): plain NumPy arrays in and out, the backward
   written by hand straight from the formulas in the op's docstring. Each pair is defined at the top of
   the op's own file (ops/softmax.py, ops/norm.py, ...)::

       fwd, bwd = PLAIN["layer_norm"]
       out, cache = fwd(x, w, b)          # NumPy arrays
       dx, dw, db = bwd(dout, cache)      # one gradient per array input

3. The fused op (``tinytensor.functional``: softmax.py, loss.py, activation.py, norm.py, attention.py,
   linear.py, embedding.py, and for Llama and Qwen rmsnorm.py, rope.py and swiglu.py in ``tinytensor/ops``):
   the same formulas applied in place, in blocks, over threads; this is what runs.
``adamw_update`` is the twin of the update in optim.py. tests/tinytensor/test_fused.py checks every twin
against its fused op, tests/tinytensor/test_plain_rung.py every plain pair against both.

``tt.use_reference_ops(True)``, or ``with tt.reference_ops(): ...``, makes every fused op and AdamW's
step run its twin, so a whole GPT can be stepped through with ops a learner has read.
"""
import contextlib

from . import config
from .ops.activation import plain_gelu, plain_gelu_backward
from .ops.attention import plain_attention, plain_attention_backward
from .ops.linear import plain_linear, plain_linear_backward
from .ops.loss import plain_cross_entropy, plain_cross_entropy_backward
from .ops.norm import plain_layer_norm, plain_layer_norm_backward
from .ops.rmsnorm import plain_rms_norm, plain_rms_norm_backward
from .ops.rope import plain_rope, plain_rope_backward
from .ops.softmax import plain_log_softmax, plain_log_softmax_backward, plain_softmax, plain_softmax_backward
from .ops.swiglu import plain_swiglu, plain_swiglu_backward
from .twins import (GELU_C, adamw_update, cross_entropy, embedding, gelu, layer_norm, linear,  # noqa: F401
                    log_softmax, repeat_kv, rms_norm, rope, rotate_half, scaled_dot_product_attention, silu,
                    softmax, swiglu)

# ----- the switch -----


def use_reference_ops(flag=True):
    """Run every fused op (and AdamW's step) as its twin from now on (False: the fused ops again).
    Returns the previous setting. Process-wide (``config.reference_ops``)."""
    before, config.reference_ops = config.reference_ops, bool(flag)
    return before


@contextlib.contextmanager
def reference_ops(flag=True):
    """``with tt.reference_ops(): ...`` runs the block on the twins, then restores the setting."""
    before = use_reference_ops(flag)
    try:
        yield
    finally:
        use_reference_ops(before)


# ----- the plain rung: op name -> (forward, backward), each pair defined at the top of the op's file -----

PLAIN = {
    "softmax": (plain_softmax, plain_softmax_backward),
    "log_softmax": (plain_log_softmax, plain_log_softmax_backward),
    "cross_entropy": (plain_cross_entropy, plain_cross_entropy_backward),
    "gelu": (plain_gelu, plain_gelu_backward),
    "layer_norm": (plain_layer_norm, plain_layer_norm_backward),
    "linear": (plain_linear, plain_linear_backward),
    "scaled_dot_product_attention": (plain_attention, plain_attention_backward),
    "rms_norm": (plain_rms_norm, plain_rms_norm_backward),
    "rope": (plain_rope, plain_rope_backward),
    "swiglu": (plain_swiglu, plain_swiglu_backward),
}
