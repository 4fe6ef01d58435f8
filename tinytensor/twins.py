"""The composed twins of the fused ops (the first rung: read these first; ``tinytensor.reference``
shows them beside the switch and the plain rung).

Each twin is the textbook formula written with tinytensor's elementary ops (exp, sum, matmul,
indexing, ...), so its gradient comes from those ops' own backward and nothing here is hand-derived.
"""
import math

from . import backend
from .ops.dropout import dropout
from .ops.masks import causal_mask
from .ops.shape import concatenate
from .tensor import Tensor

# ----- the twins -----

def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``."""
    shifted = x - x.max(axis=axis, keepdims=True).detach()    # a constant shift changes nothing, and exp
    e = shifted.exp()                                           # of numbers <= 0 cannot overflow
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) along ``axis``."""
    shifted = x - x.max(axis=axis, keepdims=True).detach()
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """-log softmax(logits)[target] per position; positions whose target is ``ignore_index`` add nothing."""
    xp = backend.xp_of(logits.data)
    C = logits.shape[-1]
    t = xp.asarray(targets.data if isinstance(targets, Tensor) else targets).reshape(-1)   # (N,)
    keep = t != ignore_index
    logp = log_softmax(logits.reshape(-1, C))                               # (N, C)
    losses = -logp[xp.arange(len(t)), xp.where(keep, t, 0)] * keep          # (N,): 0 where ignored
    if reduction == "none":
        return losses.reshape(logits.shape[:-1])
    if reduction == "sum":
        return losses.sum()
    count = int(keep.sum())
    if count == 0:
        return losses.sum() + math.nan              # nothing to average: NaN (as in PyTorch), gradient 0
    return losses.sum() / count


GELU_C = math.sqrt(2.0 / math.pi)


def gelu(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh form GPT-2 uses."""
    return 0.5 * x * (1 + (GELU_C * (x + 0.044715 * x ** 3)).tanh())


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis (population variance)."""
    centered = x - x.mean(axis=-1, keepdims=True)
    var = (centered * centered).mean(axis=-1, keepdims=True)
    out = centered / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, training=True):
    """softmax(q k^T / sqrt(D) + mask) v, with dropout on the weights: q (B, H, T, D), k and v (B, H_kv, S, D).
    With fewer key/value heads than query heads (grouped-query attention), each serves H / H_kv of them."""
    if q.ndim >= 3 and 0 < k.shape[-3] < q.shape[-3]:
        groups = q.shape[-3] // k.shape[-3]
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)
    T, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
    scores = (q @ k.swapaxes(-1, -2)) / math.sqrt(D)                        # (B, H, T, S)
    if causal:                                       # query i sees keys j <= i + (S - T)
        scores = scores.masked_fill(causal_mask(T, S, backend.xp_of(q.data)), -math.inf)
    weights = dropout(softmax(scores), dropout_p, training)
    return weights @ v                                                       # (B, H, T, D)


def repeat_kv(x, groups):
    """(..., H_kv, S, D) -> (..., H_kv * groups, S, D): query head h reads key/value head h // groups.
    Indexing copies; its backward adds each copy's gradient back into the head it came from."""
    return x[..., [h // groups for h in range(x.shape[-3] * groups)], :, :]


def linear(x, weight, bias=None):
    """x W^T + b: x (..., in), weight (out, in), bias (out,)."""
    out = x @ weight.T
    return out + bias if bias is not None else out


def embedding(ids, weight):
    """Rows of ``weight`` picked by ``ids``: a lookup is indexing (its backward adds rows back up)."""
    return weight[ids]


def adamw_update(p, g, m, v, t, lr, betas, eps, weight_decay):
    """One AdamW step of one parameter's arrays, in place, as the paper and PyTorch write it; t counts
    steps from 1. p: the parameter, g: its gradient, m and v: the moments."""
    b1, b2 = betas
    p *= 1 - lr * weight_decay                      # decoupled weight decay
    m[...] = b1 * m + (1 - b1) * g                  # first moment
    v[...] = b2 * v + (1 - b2) * g * g              # second moment
    m_hat = m / (1 - b1 ** t)                       # bias corrections: the moments start at 0
    v_hat = v / (1 - b2 ** t)
    p -= lr * m_hat / (backend.xp_of(v).sqrt(v_hat) + eps)


# ----- the twins of the Llama / Qwen ops (rmsnorm.py, rope.py, swiglu.py) -----

def rms_norm(x, weight=None, eps=1e-6):
    """x / sqrt(mean(x^2) + eps) * weight over the last axis: layer norm without centring or bias."""
    out = x / ((x * x).mean(axis=-1, keepdims=True) + eps).sqrt()
    return out * weight if weight is not None else out


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] on the halves of the last axis: each pair (x1_i, x2_i) turned a quarter."""
    h = x.shape[-1] // 2
    return concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rope(x, cos, sin):
    """x cos + rotate_half(x) sin, with the half tables (..., D/2) repeated over both halves (HF's layout)."""
    xp = backend.xp_of(x.data)
    cos, sin = (Tensor._plain(xp.concatenate([t, t], axis=-1)) for t in (cos, sin))
    return x * cos + rotate_half(x) * sin


def silu(x):
    """x sigmoid(x)."""
    return x * x.sigmoid()


def swiglu(gate, up=None):
    """silu(gate) up; with one input, its last axis holds [gate, up]."""
    if up is None:
        h = gate.shape[-1] // 2
        gate, up = gate[..., :h], gate[..., h:]
    return silu(gate) * up
