"""json_safe: what strict JSON cannot hold becomes null, the rest is kept."""

from __future__ import annotations

import json
import math

import numpy as np

from tractcast.jsonsafe import json_safe


def test_non_finite_numbers_become_null_at_any_depth() -> None:
    value = {"mae": math.nan, "per_horizon": [{"wis": math.inf}, (1.5, -math.inf)], "n": 3}
    safe = json_safe(value)
    assert safe == {"mae": None, "per_horizon": [{"wis": None}, [1.5, None]], "n": 3}
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe


def test_numpy_scalars_become_python_numbers() -> None:
    safe = json_safe({"count": np.int64(7), "mae": np.float64(0.25), "nan": np.float32("nan")})
    assert safe == {"count": 7, "mae": 0.25, "nan": None}
    assert type(safe["count"]) is int and type(safe["mae"]) is float


def test_keys_become_text_and_other_values_are_kept() -> None:
    assert json_safe({1: "a", "b": None, "c": True}) == {"1": "a", "b": None, "c": True}
