"""Holdout comparison of forecasters on the last days of a history."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tractcast.errors import InvalidInput
from tractcast.evaluation.holdout import evaluate_on_holdout
from tractcast.models.baselines import Persistence, SeasonalNaive


@pytest.fixture
def weekly_history() -> np.ndarray:
    """Three tracts repeating an exact weekly pattern for twelve weeks."""
    week = np.array([10.0, 12.0, 11.0, 9.0, 8.0, 3.0, 2.0])
    return np.tile(week, 12)[None, :] * np.array([[1.0], [5.0], [0.0]])


def test_holdout_scores_every_candidate_on_the_last_horizon_days(
    weekly_history: np.ndarray,
) -> None:
    results = evaluate_on_holdout(
        weekly_history, {"persistence": Persistence(), "seasonal_naive": SeasonalNaive()}
    )
    assert set(results) == {"persistence", "seasonal_naive"}
    assert results["seasonal_naive"]["mae"] == pytest.approx(0.0)
    assert results["persistence"]["mae"] > 1.0
    assert len(results["persistence"]["per_horizon"]) == 14
    json.dumps(results)


def test_holdout_never_scores_imputed_actuals(weekly_history: np.ndarray) -> None:
    mask = np.ones_like(weekly_history, dtype=bool)
    mask[:, -14:] = False
    results = evaluate_on_holdout(weekly_history, {"persistence": Persistence()}, mask=mask)
    assert math.isnan(results["persistence"]["mae"])


def test_holdout_rejects_a_forecaster_with_another_horizon(weekly_history: np.ndarray) -> None:
    with pytest.raises(InvalidInput):
        evaluate_on_holdout(weekly_history, {"persistence": Persistence(horizon=7)})
