"""One optimizer step and one evaluation pass: the two pieces every training loop here is made of.

Pretraining (gpt/training/pretrain.py), classification (gpt/finetune/classify.py) and instruction tuning
(gpt/finetune/instruct.py) differ in their data and their loss; each passes its own ``loss_fn`` and
batches to ``train_step``, which does the rest the same way for all three:

    for each of the n micro-batches:  loss = loss_fn(batch); backward of loss / n   (gradient accumulation)
    clip the global gradient norm to grad_clip
    AdamW step at the learning rate given, gradients zeroed

A loss or gradient norm that is NaN or Inf stops the step before the optimizer applies it
(``NonFiniteError``): the weights stay those of the last good step, and nothing broken gets saved.
With a ``tt.GradScaler`` (float16 training) the losses are scaled before backward and the gradients
unscaled before clipping; an inf or nan gradient then only skips the step and lowers the scale (and
raises NonFiniteError when the scale is already at its smallest: no step can succeed).
"""
import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import tinytensor as tt
from tinytensor import optim

from ..errors import RunFailed


class NonFiniteError(RunFailed):
    """A step's loss or gradient norm became NaN or Inf; the step was not applied."""

    def __init__(self, what, value, step=None):
        self.what, self.value, self.step = what, value, step
        at = f" at step {step}" if step is not None else ""
        super().__init__(f"the {what} became {value}{at}")


@dataclass
class StepResult:
    loss: float          # the mean loss over the micro-batches
    grad_norm: float     # the global gradient norm before clipping
    lr: float            # the learning rate the step used
    skipped: bool = False   # a GradScaler found an inf/nan gradient: the weights were left as they were


def set_lr(optimizer, lr):
    """Give every parameter group of ``optimizer`` the learning rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(optimizer, loss_fn, micro_batches, lr, grad_clip=1.0, step=None, params=None, scaler=None,
               no_sync=None):
    """One optimizer step over ``micro_batches`` (a list); ``loss_fn(batch)`` gives a scalar loss Tensor.

    The gradient is that of the mean of the micro-batches' losses. ``grad_clip`` 0 or None: no clipping
    (the norm is still measured and checked). ``params``: the tensors whose gradient norm is clipped
    (default: the optimizer's, group by group). ``step`` names the step in a NonFiniteError.
    ``scaler``: a ``tt.GradScaler`` (None or disabled: plain steps). ``no_sync``: DistributedDataParallel's
    ``no_sync``, entered for every micro-batch but the last, so their gradients add up on each rank and
    are averaged across ranks once. Returns a StepResult.
    """
    if params is None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
    set_lr(optimizer, lr)
    n = len(micro_batches)
    total = 0.0
    for i, batch in enumerate(micro_batches):
        with no_sync() if no_sync is not None and i < n - 1 else nullcontext():
            loss = loss_fn(batch)
            value = loss.item()
            if not math.isfinite(value):
                optimizer.zero_grad()
                raise NonFiniteError("loss", value, step)
            total += value
            loss = loss * (1.0 / n) if n > 1 else loss
            (scaler.scale(loss) if scaler is not None else loss).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)                      # clipping sees the true gradients
    norm = optim.clip_grad_norm(params, grad_clip if grad_clip else float("inf"))
    if scaler is not None and scaler.found_inf(optimizer):
        optimizer.zero_grad()                           # float16 overflow: skip, and lower the scale
        try:
            scaler.update()
        except FloatingPointError:                      # already at the smallest scale: no step can succeed
            raise NonFiniteError("float16 gradients", f"inf or nan at every loss scale down to "
                                 f"{scaler.get_scale():g}", step) from None
        return StepResult(total / n, float(norm), lr, skipped=True)
    if not math.isfinite(norm):
        optimizer.zero_grad()
        raise NonFiniteError("gradient norm", norm, step)
    optimizer.step()
    optimizer.zero_grad()
    if scaler is not None:
        scaler.update()
    return StepResult(total / n, float(norm), lr)


@contextmanager
def evaluating(model):
    """Inside: eval mode (no dropout) and no graph recorded; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with tt.no_grad():
            yield model
    finally:
        model.train(was_training)
