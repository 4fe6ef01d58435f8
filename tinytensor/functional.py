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
from .ops.shape import (concatenate, flatten, reshape, split, squeeze, stack, swapaxes, transpose,
                        unsqueeze)
from .ops.softmax import log_softmax, softmax

__all__ = ["abs", "add", "causal_mask", "concatenate", "cross_entropy", "div", "dropout", "embedding", "exp",
           "flatten", "gelu", "getitem", "layer_norm", "linear", "log", "log_softmax", "masked_fill", "matmul",
           "max", "mean", "min", "mul", "neg", "pow", "relu", "reshape", "scaled_dot_product_attention",
           "sigmoid", "softmax", "split", "sqrt", "squeeze", "stack", "sub", "sum", "swapaxes", "tanh",
           "transpose", "unsqueeze", "var", "where"]
