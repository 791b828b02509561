"""Metrics on small hand-computed arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tractcast.errors import InvalidInput
from tractcast.evaluation.metrics import (
    coverage,
    geometric_mean,
    interval_score,
    mae,
    mape,
    mse,
    relative_mae,
    rmse,
    score_forecast,
    wape,
    wis,
)
from tractcast.models.base import Forecast

ACTUAL = np.array([[1.0, 2.0], [0.0, 4.0]])
PREDICTED = np.array([[2.0, 2.0], [1.0, 2.0]])


def test_point_metrics_match_hand_computed_values() -> None:
    assert mse(ACTUAL, PREDICTED) == pytest.approx(1.5)
    assert mae(ACTUAL, PREDICTED) == pytest.approx(1.0)
    assert rmse(ACTUAL, PREDICTED) == pytest.approx(math.sqrt(1.5))
    assert wape(ACTUAL, PREDICTED) == pytest.approx(4.0 / 7.0)


def test_mape_ignores_points_whose_actual_is_zero() -> None:
    # |1-2|/1, |2-2|/2, |4-2|/4; the zero actual is skipped
    assert mape(ACTUAL, PREDICTED) == pytest.approx((1.0 + 0.0 + 0.5) / 3)


def test_mask_excludes_imputed_points_from_every_metric() -> None:
    mask = np.array([[True, True], [True, False]])
    assert mse(ACTUAL, PREDICTED, mask) == pytest.approx(2.0 / 3.0)
    assert mae(ACTUAL, PREDICTED, mask) == pytest.approx(2.0 / 3.0)
    assert mape(ACTUAL, PREDICTED, mask) == pytest.approx(0.5)
    assert wape(ACTUAL, PREDICTED, mask) == pytest.approx(2.0 / 3.0)


def test_nan_actuals_are_not_scored() -> None:
    actual = np.array([1.0, np.nan, 3.0])
    assert mae(actual, np.array([2.0, 100.0, 3.0])) == pytest.approx(0.5)


def test_metrics_return_nan_when_nothing_is_scored() -> None:
    nothing = np.zeros_like(ACTUAL, dtype=bool)
    for metric in (mse, mae, rmse, mape, wape):
        assert math.isnan(metric(ACTUAL, PREDICTED, nothing))
    assert math.isnan(mape(np.zeros(3), np.ones(3)))
    assert math.isnan(wape(np.zeros(3), np.ones(3)))


def test_coverage_counts_actuals_inside_the_interval_bounds_included() -> None:
    actual = np.array([1.0, 5.0, 3.0, 10.0])
    lower = np.array([1.0, 0.0, 3.5, 0.0])
    upper = np.array([2.0, 4.0, 4.0, 10.0])
    assert coverage(actual, lower, upper) == pytest.approx(0.5)
    assert coverage(actual, lower, upper, np.array([True, False, False, True])) == 1.0


def test_metrics_reject_arrays_of_different_shapes() -> None:
    with pytest.raises(InvalidInput):
        mae(np.zeros(3), np.zeros(4))
    with pytest.raises(InvalidInput):
        mae(np.zeros(3), np.zeros(3), np.ones(2, dtype=bool))


def test_score_forecast_reports_overall_and_per_horizon_metrics() -> None:
    forecast = Forecast(point=PREDICTED, lower=PREDICTED - 1.0, upper=PREDICTED + 1.0)
    scores = score_forecast(ACTUAL, forecast)
    assert set(scores) == {"mse", "mae", "rmse", "mape", "wape", "coverage", "wis", "per_horizon"}
    assert scores["mae"] == pytest.approx(1.0)
    assert scores["coverage"] == pytest.approx(0.75)
    first, second = scores["per_horizon"]
    assert first["horizon"] == 1 and second["horizon"] == 2
    assert first["mae"] == pytest.approx(1.0)  # |1-2|, |0-1|
    assert second["mse"] == pytest.approx(2.0)  # 0, 4
    assert second["coverage"] == pytest.approx(0.5)
    json.dumps(scores)


def test_score_forecast_applies_the_mask_per_horizon() -> None:
    forecast = Forecast(point=PREDICTED, lower=PREDICTED, upper=PREDICTED)
    mask = np.array([[True, False], [True, False]])
    scores = score_forecast(ACTUAL, forecast, mask)
    assert scores["mae"] == pytest.approx(1.0)
    assert math.isnan(scores["per_horizon"][1]["mae"])


def test_relative_mae_divides_by_the_reference_mae_on_the_same_points() -> None:
    reference = np.array([[3.0, 2.0], [0.0, 0.0]])  # errors 2, 0, 0, 4: MAE 1.5
    assert relative_mae(ACTUAL, PREDICTED, reference) == pytest.approx(1.0 / 1.5)
    assert math.isnan(relative_mae(ACTUAL, PREDICTED, ACTUAL))  # a perfect reference


def test_score_forecast_with_a_reference_adds_relative_mae_per_horizon_and_overall() -> None:
    forecast = Forecast(point=PREDICTED, lower=PREDICTED, upper=PREDICTED)
    reference = np.array([[3.0, 4.0], [1.0, 4.0]])  # per-horizon MAE 1.5 and 1.0
    scores = score_forecast(ACTUAL, forecast, reference=reference)
    first, second = scores["per_horizon"]
    assert first["relative_mae"] == pytest.approx(1.0 / 1.5)
    assert second["relative_mae"] == pytest.approx(1.0 / 1.0)
    assert scores["relative_mae"] == pytest.approx((1.0 / 1.5 + 1.0) / 2)


def test_interval_score_is_the_width_plus_the_scaled_miss() -> None:
    actual = np.array([5.0, 12.0, 0.0])
    lower, upper = np.full(3, 2.0), np.full(3, 10.0)
    # inside: width 8; above by 2: 8 + 2/0.2 x 2; below by 2: 8 + 2/0.2 x 2
    assert interval_score(actual, lower, upper, 0.8).tolist() == pytest.approx([8.0, 28.0, 28.0])


def test_wis_matches_the_hub_definition_by_hand() -> None:
    actual = np.array([[12.0]])
    point = np.array([[6.0]])
    forecast = Forecast(
        point=point, lower=np.array([[2.0]]), upper=np.array([[10.0]]),
        bands={0.5: (np.array([[4.0]]), np.array([[8.0]]))},
    )  # fmt: skip
    # (|y - m| / 2 + sum over intervals of alpha / 2 x IS) / (K + 1/2), K = 2 intervals
    is_50 = 4.0 + (2.0 / 0.5) * 4.0
    is_80 = 8.0 + (2.0 / 0.2) * 2.0
    expected = (0.5 * 6.0 + 0.25 * is_50 + 0.1 * is_80) / 2.5
    assert wis(actual, forecast) == pytest.approx(expected)


def test_wis_of_a_point_forecast_without_width_is_its_absolute_error() -> None:
    forecast = Forecast(point=PREDICTED, lower=PREDICTED, upper=PREDICTED)
    # one zero-width 80% interval: (|e|/2 + 0.1 x 10|e|) / 1.5 = |e| x 1.5 / 1.5
    assert wis(ACTUAL, forecast) == pytest.approx(mae(ACTUAL, PREDICTED))


def test_score_forecast_reports_coverage_of_every_interval_and_relative_wis() -> None:
    forecast = Forecast(
        point=PREDICTED, lower=PREDICTED - 1.0, upper=PREDICTED + 1.0,
        bands={0.5: (PREDICTED - 0.5, PREDICTED + 0.5), 0.95: (PREDICTED - 3, PREDICTED + 3)},
    )  # fmt: skip
    naive = Forecast(point=PREDICTED + 2.0, lower=PREDICTED, upper=PREDICTED + 4.0)
    scores = score_forecast(ACTUAL, forecast, reference=naive)
    assert scores["coverage_50"] == pytest.approx(0.25)  # only the exact point
    assert scores["coverage_95"] == pytest.approx(1.0)
    assert 0 < scores["relative_wis"] < 1  # narrower and closer than the reference
    assert "relative_wis" in scores["per_horizon"][0]


def test_geometric_mean_ignores_unscored_ratios() -> None:
    assert geometric_mean([0.5, 2.0, math.nan]) == pytest.approx(1.0)
    assert math.isnan(geometric_mean([math.nan]))
