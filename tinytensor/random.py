"""One seeded source for every random draw the library makes (init, dropout, sampling)."""
import numpy as np

from . import backend

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed every random draw tinytensor makes: parameter init, dropout and sampling (CuPy too)."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    if backend._cupy is not None:
        backend._cupy.random.seed(int(seed))


def generator():
    """The NumPy Generator behind the library's random draws."""
    return _generator


def get_state():
    """The generator's state as a JSON-friendly dict (for exact resume)."""
    return _generator.bit_generator.state


def set_state(state):
    """Restore a state returned by ``get_state``."""
    _generator.bit_generator.state = state


def normal(shape, dtype, device="cpu", std=1.0):
    """Standard normal draws times ``std`` of ``dtype`` on ``device``."""
    values = _generator.standard_normal(shape, dtype=np.float64 if np.dtype(dtype) == np.float64 else np.float32)
    values = (values * std).astype(dtype, copy=False)
    return backend.to_device(values, device)


def uniform(shape, device="cpu", dtype=np.float32):
    """Uniform draws in [0, 1) on ``device`` (drawn on the host so one seed gives one stream)."""
    values = _generator.random(shape, dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)
    return backend.to_device(values, device)
