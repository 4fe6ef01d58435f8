"""Dynamic loss scaling for float16 training, as torch.cuda.amp.GradScaler does it.

float16 gradients underflow: many are smaller than its smallest normal (6e-5) and flush to zero. So the
loss is multiplied by a large ``scale`` before ``backward()`` (every gradient with it, by the chain rule),
and the float32 gradients on the master weights are divided by it again before they are used:

    scaler = tt.GradScaler()
    with tt.autocast(dtype="float16"):
        loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)                 # optional: before clipping, so max_norm means the true norm
    optim.clip_grad_norm(model.parameters(), 1.0)
    scaler.step(opt)                     # skipped when a gradient is inf or nan
    scaler.update()                      # the scale halves after a skipped step, doubles after
                                         # growth_interval good ones in a row

Too large a scale overflows some gradient to inf: that step is skipped (the weights stay as they were)
and the scale is lowered, so it settles just below overflow. bfloat16 has float32's range and needs no
scaling: ``GradScaler(enabled=False)`` passes everything through, so one loop serves every precision.

The scale stays within [MIN_SCALE, MAX_SCALE]: growth stops at the top, and an overflow at the bottom
means that no step can succeed (the gradients are inf or nan however small the scale): ``update`` then
raises FloatingPointError instead of lowering the scale towards 0.
"""
import numpy as np

from . import amp, backend


class GradScaler:
    """Loss scaling with the skip-and-back-off rule above; ``state_dict()`` for checkpoints."""
    MIN_SCALE = 2.0 ** -24      # float16's smallest subnormal: a gradient still inf below it never recovers
    MAX_SCALE = 2.0 ** 32       # ~4e9: a loss of 1e4 times it stays far inside float32

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        if not self.MIN_SCALE <= init_scale <= self.MAX_SCALE:
            raise ValueError(f"GradScaler: init_scale must be in [2**-24, 2**32], got {init_scale}")
        if not growth_factor > 1.0 or not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: need growth_factor > 1 and 0 < backoff_factor < 1, got "
                             f"{growth_factor} and {backoff_factor}")
        if not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"GradScaler: growth_interval must be a positive integer, got {growth_interval!r}")
        self._enabled = bool(enabled)
        self._scale = float(init_scale)
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self._good_steps = 0            # steps without inf/nan since the scale last changed
        self._found_inf = {}            # id(optimizer) -> True/False, for this step (after unscale_)

    def is_enabled(self):
        return self._enabled

    def get_scale(self):
        """The current scale (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def scale(self, loss):
        """``loss * scale`` (a Tensor op, so backward carries the scale into every gradient)."""
        if not self._enabled:
            return loss
        if amp.is_low(loss.dtype):
            loss = amp.cast(loss, np.dtype(np.float32))      # the scaled loss itself must not overflow
        return loss * loss.dtype.type(self._scale)

    def unscale_(self, optimizer):
        """Divide the gradients of ``optimizer``'s parameters by the scale, in place of each ``.grad``
        (new arrays: a backward may share one array between tensors), and note whether any is inf or
        nan. At most once per optimizer between two ``update()`` calls."""
        if not self._enabled:
            return
        if id(optimizer) in self._found_inf:
            raise RuntimeError("GradScaler.unscale_ was already called for this optimizer since the last "
                               "update(); call it once per step, before clipping")
        bad = None
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad * p.grad.dtype.type(1.0 / self._scale)
                xp = backend.xp_of(g)
                finite = xp.isfinite(g).all()          # a device scalar: one sync at the end, not per tensor
                bad = ~finite if bad is None else bad | ~finite
                p.grad = g
        self._found_inf[id(optimizer)] = bool(bad) if bad is not None else False

    def step(self, optimizer):
        """``optimizer.step()`` unless a gradient was inf or nan (then nothing changes). Unscales first
        if ``unscale_`` was not called. Returns True when the step was taken."""
        if not self._enabled:
            optimizer.step()
            return True
        if id(optimizer) not in self._found_inf:
            self.unscale_(optimizer)
        if self._found_inf[id(optimizer)]:
            return False
        optimizer.step()
        return True

    def found_inf(self, optimizer):
        """Whether the gradients of ``optimizer`` held inf or nan this step (after ``unscale_``)."""
        return bool(self._found_inf.get(id(optimizer), False))

    def update(self):
        """End the step: lower the scale after an overflow, raise it after ``growth_interval`` good steps."""
        if not self._enabled:
            return
        if any(self._found_inf.values()):
            self._found_inf = {}
            if self._scale <= self.MIN_SCALE:
                raise FloatingPointError(f"GradScaler: the gradients are inf or nan even at the smallest loss "
                                         f"scale ({self.MIN_SCALE:g}): no step can succeed (the model diverged?)")
            self._scale = max(self._scale * self.backoff_factor, self.MIN_SCALE)
            self._good_steps = 0
        elif self._found_inf:
            self._good_steps += 1
            if self._good_steps >= self.growth_interval:
                self._scale = min(self._scale * self.growth_factor, self.MAX_SCALE)
                self._good_steps = 0
        self._found_inf = {}

    def state_dict(self):
        """The scale and its counters (plain numbers, JSON-ready)."""
        return {"scale": self._scale, "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "good_steps": self._good_steps, "enabled": self._enabled}

    def load_state_dict(self, state):
        """Restore what ``state_dict`` gave; a ValueError naming the field when one is not usable."""
        checks = {"scale": lambda v: type(v) in (int, float) and self.MIN_SCALE <= v <= self.MAX_SCALE,
                  "growth_factor": lambda v: type(v) in (int, float) and v > 1,
                  "backoff_factor": lambda v: type(v) in (int, float) and 0 < v < 1,
                  "growth_interval": lambda v: type(v) is int and v >= 1,
                  "good_steps": lambda v: type(v) is int and v >= 0,
                  "enabled": lambda v: type(v) is bool}
        if not isinstance(state, dict):
            raise ValueError("GradScaler state must be a dict of its fields")
        for name, ok in checks.items():
            if name in state and not ok(state[name]):
                bounds = " (it must be in [2**-24, 2**32])" if name == "scale" else ""
                raise ValueError(f"GradScaler state: {name} = {state[name]!r} is not usable{bounds}")
        self._scale = float(state.get("scale", self._scale))
        self.growth_factor = state.get("growth_factor", self.growth_factor)
        self.backoff_factor = state.get("backoff_factor", self.backoff_factor)
        self.growth_interval = state.get("growth_interval", self.growth_interval)
        self._good_steps = state.get("good_steps", self._good_steps)
        self._enabled = state.get("enabled", self._enabled)
        self._found_inf = {}
