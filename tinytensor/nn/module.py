"""Module: a container of parameters and sub-modules, found by walking its attributes."""
from collections import OrderedDict

import numpy as np

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor a Module owns and an optimizer updates; requires grad by default."""

    def __init__(self, data, requires_grad=True, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"


class Module:
    """Base class of every layer. Assign Parameters and Modules as attributes; define ``forward``."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ----- walking the tree -----
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        return (m for _, m in self.named_children())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) for every parameter, each once, in definition order."""
        seen = set()
        for mod_name, module in self.named_modules(prefix):
            for name, value in vars(module).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self, trainable_only=False):
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ----- modes and devices -----
    def train(self, mode=True):
        """Training mode (dropout active). Returns self."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        """Evaluation mode (dropout off). Returns self."""
        return self.train(False)

    def to(self, device_or_dtype):
        """Move (or cast) every parameter in place. Returns self."""
        for module in self.modules():
            for name, value in list(vars(module).items()):
                if isinstance(value, Parameter):
                    data = value.data
                    if str(device_or_dtype).startswith(("cpu", "cuda")):
                        data = backend.to_device(data, device_or_dtype)
                    else:
                        data = data.astype(device_or_dtype)
                    value.data, value.grad = data, None
        return self

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # ----- saving -----
    def state_dict(self):
        """{dotted name: NumPy array} of every parameter (host copies)."""
        return OrderedDict((name, backend.to_numpy(p.data).copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters. With ``strict`` (default) names must match exactly.

        Shapes must always match; the arrays are cast to each parameter's dtype and device.
        """
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing: {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected: {', '.join(unexpected)}")
            raise KeyError(f"load_state_dict: {'; '.join(parts)}")
        values = {}
        for name, p in own.items():       # check every shape first, so a bad dict changes nothing
            if name not in state:
                continue
            value = state[name]
            value = value.data if isinstance(value, Tensor) else value
            if tuple(value.shape) != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {tuple(value.shape)} in the state dict "
                                 f"but {p.shape} in the model")
            values[name] = value
        for name, value in values.items():   # copies: later in-place updates must not reach the caller's arrays
            p = own[name]
            p.data = backend.to_device(np.array(backend.to_numpy(value), dtype=p.dtype), p.device)
        return {"missing": missing, "unexpected": unexpected}

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self.named_children():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")

    def extra_repr(self):
        return ""
