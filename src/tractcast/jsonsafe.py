"""Values made fit for strict JSON, which has no NaN or infinity."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """The value with every non-finite float as None (metrics with nothing to score are NaN),
    numpy scalars as Python numbers and mapping keys as text, through dicts, lists and tuples."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    return value
