"""What each op computes and its local derivative, in one line each, for the graph page's side panel.

``g`` is the gradient that arrives at the op's output (dL/d out); each entry says what the op passes
back to its inputs. The source file and line of the op's backward are found at run time, so the
page links a learner to the code that really ran.
"""
import inspect
import os

FORMULAS = {
    "add": ("out = a + b", "dL/da = g, dL/db = g (summed back over broadcast axes)"),
    "sub": ("out = a - b", "dL/da = g, dL/db = -g"),
    "mul": ("out = a * b", "dL/da = g * b, dL/db = g * a"),
    "div": ("out = a / b", "dL/da = g / b, dL/db = -g * a / b^2"),
    "neg": ("out = -a", "dL/da = -g"),
    "pow": ("out = a ** p", "dL/da = g * p * a^(p-1)"),
    "exp": ("out = exp(a)", "dL/da = g * exp(a) = g * out"),
    "log": ("out = log(a)", "dL/da = g / a"),
    "tanh": ("out = tanh(a)", "dL/da = g * (1 - out^2)"),
    "sqrt": ("out = sqrt(a)", "dL/da = g / (2 * out)"),
    "relu": ("out = max(a, 0)", "dL/da = g * (a > 0)"),
    "sigmoid": ("out = 1 / (1 + exp(-a))", "dL/da = g * out * (1 - out)"),
    "abs": ("out = |a|", "dL/da = g * sign(a)"),
    "sum": ("out = sum(a, axis)", "dL/da = g copied to every summed element"),
    "mean": ("out = sum(a, axis) / n", "dL/da = g / n copied to every element"),
    "max": ("out = max(a, axis)", "dL/da = g where a is the max (ties share it), 0 elsewhere"),
    "min": ("out = min(a, axis)", "dL/da = g where a is the min (ties share it), 0 elsewhere"),
    "var": ("out = mean((a - mean(a))^2)", "dL/da = g * 2 (a - mean(a)) / n"),
    "matmul": ("out = A @ B", "dL/dA = g @ B^T, dL/dB = A^T @ g"),
    "linear": ("out = x @ W^T + b", "dL/dx = g @ W, dL/dW = g^T @ x, dL/db = sum of g"),
    "reshape": ("out = a viewed with a new shape", "dL/da = g reshaped back"),
    "transpose": ("out = a with axes permuted", "dL/da = g with the inverse permutation"),
    "getitem": ("out = a[index]", "dL/da = zeros with g added at index"),
    "concatenate": ("out = [a, b, ...] along an axis", "each input gets its slice of g"),
    "stack": ("out = a, b, ... stacked on a new axis", "each input gets its slice of g"),
    "split": ("out = one piece of a", "dL/da = g in that piece's place, zeros elsewhere"),
    "where": ("out = cond ? a : b", "dL/da = g where cond, dL/db = g elsewhere"),
    "masked_fill": ("out = a with value where mask", "dL/da = g where not mask, 0 where mask"),
    "astype": ("out = a in another dtype", "dL/da = g cast back"),
    "softmax": ("out_i = exp(a_i) / sum_j exp(a_j)", "dL/da = out * (g - sum(g * out))"),
    "log_softmax": ("out = a - log(sum(exp(a)))", "dL/da = g - softmax(a) * sum(g)"),
    "cross_entropy": ("L = mean(-log softmax(logits)[target])",
                      "dL/dlogits = (softmax(logits) - onehot(target)) / N, times g"),
    "gelu": ("out = 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))", "dL/da = g * gelu'(a)"),
    "layer_norm": ("out = (a - mean) / sqrt(var + eps) * w + b",
                   "dL/da = (w*g - mean(w*g) - xhat * mean(w*g * xhat)) / sqrt(var + eps)"),
    "rms_norm": ("out = a / sqrt(mean(a^2) + eps) * w", "dL/da = (w*g - xhat * mean(w*g * xhat)) / rms"),
    "embedding": ("out = W[ids]", "dL/dW = g added into the rows ids (scatter-add)"),
    "scaled_dot_product_attention": ("out = softmax(q k^T / sqrt(d) + mask) v",
                                     "dL/dv = P^T g, dL/dP = g v^T, dL/dS = P * (dL/dP - rowsum), dq = dS k / sqrt(d)"),
    "silu": ("out = a * sigmoid(a)", "dL/da = g * s * (1 + a (1 - s)), s = sigmoid(a)"),
    "swiglu": ("out = silu(a) * b", "dL/da = g * b * silu'(a), dL/db = g * silu(a)"),
}

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def formula(op):
    """(forward, local derivative) for ``op``; a pointer to the source for ops not in the table."""
    return FORMULAS.get(op, ("", "read its backward in the source named below"))


def source_of(backward):
    """``tinytensor/ops/x.py:12``: where an op node's backward function is defined, or None."""
    fn = getattr(backward, "func", backward)          # functools.partial
    fn = getattr(fn, "__func__", fn)                  # bound methods
    code = getattr(fn, "__code__", None)
    if code is None:
        try:
            return f"{_relative(inspect.getsourcefile(fn))}:{inspect.getsourcelines(fn)[1]}"
        except (TypeError, OSError):
            return None
    return f"{_relative(code.co_filename)}:{code.co_firstlineno}"


def _relative(path):
    path = os.path.abspath(path)
    return os.path.relpath(path, _ROOT) if path.startswith(_ROOT + os.sep) else path
