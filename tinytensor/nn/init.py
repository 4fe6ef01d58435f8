"""Making a layer's parameters, and ``nn.skip_init``: building layers without their default initialisation.

    layer = nn.skip_init(nn.Linear, 768, 3072)      # weight and bias allocated, never drawn or filled

For weights that something overwrites next (a loader, or your own initialisation scheme), the default
draws would be wasted time, and they would move the library's seeded random stream (``tt.manual_seed``).
"""
import threading

from .. import backend
from .module import Parameter

_skipping = threading.local()


def skip_init(module_cls, *args, **kwargs):
    """``module_cls(*args, **kwargs)`` with the parameters of every nn layer made inside it left
    uninitialised (whatever the memory held, as ``np.empty``): no random draws, no time spent filling.

    Works for ``Linear``, ``Embedding``, ``LayerNorm`` and any module that builds its parameters from
    them (or with ``nn.init.new_parameter``), as PyTorch's ``torch.nn.utils.skip_init`` does. Fill every
    parameter before using the module.
    """
    previous = getattr(_skipping, "on", False)
    _skipping.on = True
    try:
        return module_cls(*args, **kwargs)
    finally:
        _skipping.on = previous


def new_parameter(shape, dtype, device, fill):
    """A Parameter of ``shape`` and ``dtype`` on ``device``, holding ``fill()`` (a host array), or left
    uninitialised inside ``skip_init`` (``fill`` is then never called)."""
    if getattr(_skipping, "on", False):
        return Parameter(backend.xp_for(device).empty(shape, dtype), dtype=dtype)
    return Parameter(fill(), dtype=dtype, device=device)
