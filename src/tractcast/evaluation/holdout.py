"""Compare forecasters on the last `horizon` days of a history they did not see."""

from __future__ import annotations

from typing import Any

import numpy as np

from tractcast.errors import InvalidInput
from tractcast.evaluation.metrics import score_forecast
from tractcast.models.base import Forecaster, check_history


def evaluate_on_holdout(
    history: np.ndarray,
    forecasters: dict[str, Forecaster],
    horizon: int = 14,
    mask: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Fit each candidate on all but the last `horizon` days and score it on those days."""
    history = check_history(history, horizon + 1)
    if mask is not None and np.shape(mask) != history.shape:
        raise InvalidInput(f"mask {np.shape(mask)} and history {history.shape} differ in shape")
    train, actual = history[:, :-horizon], history[:, -horizon:]
    scored = None if mask is None else np.asarray(mask, dtype=bool)[:, -horizon:]
    results: dict[str, dict[str, Any]] = {}
    for name, forecaster in forecasters.items():
        if forecaster.horizon != horizon:
            raise InvalidInput(
                f"forecaster {name!r} has horizon {forecaster.horizon}, the holdout needs {horizon}"
            )
        forecaster.fit(train)
        results[name] = score_forecast(actual, forecaster.predict(train), scored)
    return results
