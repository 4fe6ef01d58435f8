"""tinytensor: a small deep-learning engine on NumPy (or CuPy) with reverse-mode autograd.

    import tinytensor as tt
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad            # array([2., 4., 6.], dtype=float32)
"""
from . import backend, config, random
from .schedule import heap, parallel
from .tensor import Tensor, tensor, topological_order
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .ops import methods as _methods  # noqa: F401  (attaches operators to Tensor)
from .creation import arange, full, ones, ones_like, rand, randn, zeros, zeros_like
from .random import manual_seed
from .autograd import grad, jvp
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .anomaly import AnomalyError, detect_anomaly
from .function import Function, FunctionCtx
from .serialize import load, save
from .ops.elementwise import abs, exp, log, masked_fill, relu, sigmoid, sqrt, tanh, where
from .ops.matmul import matmul
from .ops.reduce import max, mean, min, sum, var
from .ops.shape import concatenate, reshape, split, squeeze, stack, transpose, unsqueeze
from .ops.softmax import log_softmax, softmax
from . import functional, nn, optim
from .reference import reference_ops, use_reference_ops
from .graphviz import draw, to_dot
from .memory import graph_stats, op_counter
from .trace import trace  # the context manager (from tinytensor.trace import TracePrinter still works)
from .amp import autocast
from .grad_scaler import GradScaler

cat = concatenate
float32, float64, int64, int32, bool_ = "float32", "float64", "int64", "int32", "bool"
cuda_available = backend.cuda_available
set_tf32 = backend.set_tf32    # TF32 matmuls on "cuda"; a no-op on the CPU

set_num_threads = parallel.set_workers    # threads for tinytensor's CPU work (1 = no splitting)
tune_heap = heap.tune      # reuse freed array memory instead of faulting in fresh pages (see schedule/heap.py)

__version__ = "0.1.0"
