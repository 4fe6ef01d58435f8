"""Optimizers written out by hand: SGD with momentum, AdamW with decoupled weight decay, and grad clipping.

AdamW's update as the paper writes it, array by array: ``reference.adamw_update``; here the same update
runs in place with one temporary, its parameters cut into cache-sized pieces shared over the threads.
"""
import math

import numpy as np

from . import backend, config, twins as reference
from .cuda import kernels as cuda_kernels
from .schedule import optim as schedule
from .tensor import Tensor


def _groups(params_or_groups, defaults):
    """Normalise a parameter list, or a list of {"params": [...], option: value} dicts, into groups."""
    items = list(params_or_groups)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    if not isinstance(items[0], dict):
        items = [{"params": items}]
    groups = []
    for g in items:
        group = dict(defaults)
        group.update(g)
        group["params"] = list(g["params"])
        groups.append(group)
    return groups


class Optimizer:
    """What every optimizer shares: parameter groups, zero_grad, and a state dict for resuming."""

    def __init__(self, params_or_groups, defaults):
        self.param_groups = _groups(params_or_groups, defaults)
        self.state = {}      # index of a parameter (in group order) -> dict of arrays and counters

    def _indexed(self):
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if isinstance(p.grad, Tensor):      # left by backward(create_graph=True): step by its values
                    p.grad = p.grad.data
                yield i, group, p
                i += 1

    def zero_grad(self):
        """Forget every parameter's gradient (sets ``.grad`` to None)."""
        for _, _, p in self._indexed():
            p.grad = None

    def state_dict(self):
        """{"param_groups": [hyperparameters...], "state": {index: {name: array or number}}}; host copies."""
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        state = {i: {k: (backend.to_numpy(v).copy() if hasattr(v, "shape") else v) for k, v in s.items()}
                 for i, s in self.state.items()}
        return {"param_groups": groups, "state": state}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and moments saved by ``state_dict``; shapes must match."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, this optimizer {len(self.param_groups)}")
        for mine, saved in zip(self.param_groups, groups):
            mine.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items() if k != "params"})
        params = {i: p for i, _, p in self._indexed()}
        self.state = {}
        for key, entry in state_dict["state"].items():
            i = int(key)
            if i not in params:
                raise ValueError(f"optimizer state names parameter {i}, but there are only {len(params)}")
            p = params[i]
            restored = {}
            for k, v in entry.items():
                if k == "step":
                    v = int(v)
                elif hasattr(v, "shape"):
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"optimizer state for parameter {i}: {k} has shape {tuple(v.shape)}, "
                                         f"parameter has {p.shape}")
                    v = backend.to_device(np.array(backend.to_numpy(v), dtype=p.dtype), p.device)   # a copy: steps update it in place
                restored[k] = v
            self.state[i] = restored


class SGD(Optimizer):
    """p -= lr * v, with v = momentum * v + grad (plain gradient descent when momentum is 0)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        if lr <= 0:
            raise ValueError(f"SGD: lr must be positive, got {lr}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def step(self):
        for i, group, p in self._indexed():
            if p.grad is None:
                continue
            g = p.grad
            if group["weight_decay"]:
                g = g + p.data * p.dtype.type(group["weight_decay"])
            if group["momentum"]:
                state = self.state.setdefault(i, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.copy()
                else:
                    buf *= p.dtype.type(group["momentum"])
                    buf += g
                g = buf
            p.data -= p.dtype.type(group["lr"]) * g


def _adamw_block(p, g, m, v, b1, one_minus_b1, b2, one_minus_b2, decay, bias2, eps, step):
    """One AdamW update of a block, in place (the formula in AdamW's docstring), one temporary reused for
    every term. The constants come from ``_adamw_constants``: decay = 1 - lr wd (None without decay),
    bias2 = 1 / sqrt(1 - b2^t), step = -lr / (1 - b1^t)."""
    xp = backend.xp_of(p)
    scratch = xp.multiply(g, one_minus_b1)
    m *= b1
    m += scratch                               # first moment: m = b1 m + (1 - b1) g
    xp.multiply(g, g, out=scratch)
    scratch *= one_minus_b2
    v *= b2
    v += scratch                               # second moment: v = b2 v + (1 - b2) g^2
    if decay is not None:
        p *= decay                             # decoupled weight decay: p *= 1 - lr wd
    xp.sqrt(v, out=scratch)
    scratch *= bias2
    scratch += eps                             # sqrt(v / (1 - b2^t)) + eps
    xp.divide(m, scratch, out=scratch)
    scratch *= step                            # -lr / (1 - b1^t): the bias-corrected step
    p += scratch


def _adamw_constants(dtype, b1, b2, lr, wd, eps, t):
    """The numbers ``_adamw_block`` takes after its arrays, in the parameter's dtype."""
    one = dtype.type
    return (one(b1), one(1 - b1), one(b2), one(1 - b2), one(1 - lr * wd) if wd else None,
            one(1 / math.sqrt(1 - b2 ** t)), one(eps), one(-lr / (1 - b1 ** t)))


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as in PyTorch.

    For each parameter: m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr * wd * p;  p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    A flat parameter list decays every parameter; pass groups to exempt some (biases, norms).
    Its twin, the formula array by array: ``reference.adamw_update`` (``tt.use_reference_ops``).
    """

    def __init__(self, params_or_groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        if lr < 0 or eps < 0 or not all(0.0 <= b < 1.0 for b in betas) or weight_decay < 0:
            raise ValueError(f"AdamW: invalid hyperparameters lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params_or_groups, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def step(self):
        jobs = []           # (arrays, constants) of every CPU update, run below as one thread region
        for i, group, p in self._indexed():
            if p.grad is None:
                continue
            xp = backend.xp_of(p.data)
            state = self.state.get(i)
            if state is None:
                state = self.state[i] = {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_avg_sq": xp.zeros_like(p.data)}
            state["step"] += 1
            p._mark_changed()           # updated in place below: backward of an older graph must refuse
            t = state["step"]
            b1, b2 = group["betas"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            arrays = (p.data, p.grad, state["exp_avg"], state["exp_avg_sq"])
            if config.reference_ops:
                reference.adamw_update(*arrays, t, lr, (b1, b2), eps, wd)
            elif cuda_kernels.use(xp, "adamw"):     # the same update in one GPU kernel per parameter
                cuda_kernels.adamw_update(*arrays, b1, b2, lr, wd, eps, t)
            elif xp is np and all(a.flags.c_contiguous for a in arrays):
                jobs += schedule.pieces(arrays, _adamw_constants(p.dtype, b1, b2, lr, wd, eps, t))
            else:
                _adamw_block(*arrays, *_adamw_constants(p.dtype, b1, b2, lr, wd, eps, t))
        schedule.run(_adamw_block, jobs)           # the threads share every piece of every update


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; returns the norm before."""
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if total > max_norm and total > 0:
        scale = max_norm / (total + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad = p.grad * p.grad.dtype.type(scale)     # a new array: grads may be shared
    return total


clip_grad_norm_ = clip_grad_norm
