"""``tinytensor.functional`` (imported as ``F``): every op as a plain function, PyTorch-style."""
from .ops.activation import gelu
from .ops.attention import causal_mask, scaled_dot_product_attention
from .ops.dropout import dropout
from .ops.elementwise import (abs, add, div, exp, log, masked_fill, mul, neg, pow, relu, sigmoid, sqrt, sub,
                              tanh, where)
from .ops.embedding import embedding
from .ops.index import getitem
from .ops.linear import linear
from .ops.loss import cross_entropy
from .ops.matmul import matmul
from .ops.norm import layer_norm
from .ops.reduce import max, mean, min, sum, var
from .ops.rmsnorm import rms_norm
from .ops.rope import rope, rope_frequencies, rope_tables
from .ops.shape import (concatenate, flatten, reshape, split, squeeze, stack, swapaxes, transpose,
                        unsqueeze)
from .ops.softmax import log_softmax, softmax
from .ops.swiglu import silu, swiglu

__all__ = ["abs", "add", "causal_mask", "concatenate", "cross_entropy", "div", "dropout", "embedding", "exp",
           "flatten", "gelu", "getitem", "layer_norm", "linear", "log", "log_softmax", "masked_fill", "matmul",
           "max", "mean", "min", "mul", "neg", "pow", "relu", "reshape", "rms_norm", "rope", "rope_frequencies",
           "rope_tables", "scaled_dot_product_attention", "sigmoid", "silu", "softmax", "split", "sqrt", "squeeze",
           "stack", "sub", "sum", "swapaxes", "swiglu", "tanh",
           "transpose", "unsqueeze", "var", "where"]
