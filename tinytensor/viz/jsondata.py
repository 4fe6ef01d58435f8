"""JSON for the page: NumPy values made plain, and NaN / infinity spelled so that the browser can read them.

Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON: the browser's ``JSON.parse``
refuses the whole document. Here a non-finite float becomes ``{"$float": "nan"}`` (or ``"inf"``,
``"-inf"``) and ``json.dumps`` runs with ``allow_nan=False``, so a stray one raises instead of breaking
the page; the page's ``TT.parse`` turns the objects back into numbers.
"""
import json
import math

import numpy as np

_SPECIAL = {"nan": {"$float": "nan"}, "inf": {"$float": "inf"}, "-inf": {"$float": "-inf"}}


def plain(value):
    """``value`` with NumPy arrays and scalars turned into lists and numbers, non-finite floats encoded."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return dict(_SPECIAL["nan" if value != value else ("inf" if value > 0 else "-inf")])
    return value


def dumps(value):
    """Compact JSON text of ``value`` (see ``plain``); never contains NaN or Infinity literals."""
    return json.dumps(plain(value), allow_nan=False, separators=(",", ":"))


def for_script_tag(text):
    """JSON text made safe inside ``<script type="application/json">``: no ``</script>`` or ``<!--``
    can appear (every ``<`` is written as the JSON escape ``\\u003c``, which parses back the same)."""
    return text.replace("<", "\\u003c")
