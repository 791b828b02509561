"""Rolling-origin backtest: fits before each origin only, scores after it, never scores imputed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tractcast.errors import InvalidInput
from tractcast.evaluation.backtest import (
    origins_between,
    recent_origins,
    report_table,
    run_backtest,
    spread_origins,
)
from tractcast.models.base import Forecast
from tractcast.models.baselines import MovingAverage, Persistence, SeasonalNaive

WEEK = np.array([10.0, 12.0, 11.0, 9.0, 8.0, 3.0, 2.0])


@pytest.fixture
def weekly_history() -> np.ndarray:
    """Three tracts repeating an exact weekly pattern for twenty weeks."""
    return np.tile(WEEK, 20)[None, :] * np.array([[1.0], [5.0], [0.0]])


class SpyForecaster:
    """Forecasts the last seen value; remembers how many days every copy was fitted on."""

    family = "spy"
    min_days = 1
    fitted_on: list[int] = []

    def __init__(self, horizon: int = 14) -> None:
        self.horizon = horizon

    def fit(self, history: np.ndarray) -> None:
        SpyForecaster.fitted_on.append(history.shape[1])

    def predict(self, history: np.ndarray, tracts: np.ndarray | None = None) -> Forecast:
        point = np.repeat(
            history[:, -1:] if tracts is None else history[tracts, -1:], self.horizon, axis=1
        )
        return Forecast(point=point, lower=point * 0.5, upper=point * 1.5)

    def params(self) -> dict[str, Any]:
        return {"horizon": self.horizon}

    def save(self, directory: Path) -> None:
        raise NotImplementedError


def test_each_origin_fits_a_fresh_copy_on_the_days_before_it_only(
    weekly_history: np.ndarray,
) -> None:
    SpyForecaster.fitted_on = []
    prototype = SpyForecaster()
    result = run_backtest(weekly_history, {"spy": prototype}, [70, 50, 90])
    assert result.origins == [50, 70, 90]
    assert SpyForecaster.fitted_on == [50, 70, 90]
    assert [entry["origin"] for entry in result.scores["spy"]["per_origin"]] == [50, 70, 90]


def test_future_days_never_reach_the_forecaster(weekly_history: np.ndarray) -> None:
    history = weekly_history.copy()
    history[:, 100:] *= 1000.0  # a jump right at the origin: a peek would show in the forecast
    scores = run_backtest(history, {"persistence": Persistence()}, [100]).scores
    assert scores["persistence"]["wape"] > 0.99


def test_seasonal_naive_is_exact_on_an_exact_weekly_pattern(
    weekly_history: np.ndarray,
) -> None:
    candidates = {"seasonal_naive": SeasonalNaive(), "persistence": Persistence()}
    scores = run_backtest(weekly_history, candidates, [60, 80, 100]).scores
    assert scores["seasonal_naive"]["mae"] == pytest.approx(0.0)
    assert scores["persistence"]["mae"] > 1.0
    # a perfect reference leaves nothing to divide by: relative MAE is undefined, not infinite
    assert math.isnan(scores["persistence"]["relative_mae"])


def test_relative_mae_is_the_mean_over_horizons_of_mae_over_seasonal_naive_mae() -> None:
    rng = np.random.default_rng(3)
    history = rng.poisson(np.tile(WEEK * 10, 20)[None, :] * np.array([[1.0], [3.0]])).astype(float)
    candidates = {"moving_average": MovingAverage(), "seasonal_naive": SeasonalNaive()}
    scores = run_backtest(history, candidates, [70, 84, 98, 112]).scores
    ours, reference = scores["moving_average"], scores["seasonal_naive"]
    ratios = [
        mine["mae"] / theirs["mae"]
        for mine, theirs in zip(ours["per_horizon"], reference["per_horizon"], strict=True)
    ]
    assert ours["relative_mae"] == pytest.approx(np.mean(ratios))
    assert reference["relative_mae"] == pytest.approx(1.0)


def test_scores_hold_every_metric_overall_per_horizon_and_per_origin(
    weekly_history: np.ndarray,
) -> None:
    scores = run_backtest(weekly_history, {"persistence": Persistence()}, [60, 90]).scores
    metrics = {"mse", "mae", "rmse", "mape", "wape", "coverage", "relative_mae"}
    assert metrics <= set(scores["persistence"])
    assert [h["horizon"] for h in scores["persistence"]["per_horizon"]] == list(range(1, 15))
    assert metrics <= set(scores["persistence"]["per_horizon"][0])
    assert len(scores["persistence"]["per_origin"]) == 2
    json.dumps(scores)


def test_imputed_actuals_are_never_scored(weekly_history: np.ndarray) -> None:
    history = weekly_history.copy()
    history[0, 95] = 5000.0  # an imputed day far off any forecast
    mask = np.ones_like(history, dtype=bool)
    mask[0, 95] = False
    candidates = {"seasonal_naive": SeasonalNaive()}
    masked = run_backtest(history, candidates, [90], mask=mask).scores["seasonal_naive"]
    assert masked["mae"] == pytest.approx(0.0)
    unmasked = run_backtest(history, candidates, [90]).scores["seasonal_naive"]
    assert unmasked["mae"] > 10.0


def test_an_origin_without_enough_days_before_or_after_it_is_rejected(
    weekly_history: np.ndarray,
) -> None:
    with pytest.raises(InvalidInput, match="days to fit on"):
        run_backtest(weekly_history, {"seasonal_naive": SeasonalNaive()}, [3])
    with pytest.raises(InvalidInput, match="fewer than 14 days"):
        run_backtest(weekly_history, {"seasonal_naive": SeasonalNaive()}, [130])


def test_origins_are_spread_evenly_between_two_days() -> None:
    assert spread_origins(100, 200, 5) == [100, 125, 150, 175, 200]
    assert spread_origins(10, 12, 5) == [10, 11, 12]  # no repeats
    with pytest.raises(InvalidInput):
        spread_origins(10, 5, 2)


def test_default_origins_are_the_most_recent_weeks() -> None:
    assert recent_origins(n_days=100, count=3, horizon=14) == [72, 79, 86]
    dates = pd.date_range("2024-01-01", periods=100, freq="D")
    assert origins_between(dates, 3) == [72, 79, 86]


def test_aligned_origins_stay_on_the_same_days_as_the_data_grows() -> None:
    now = recent_origins(n_days=100, count=4, horizon=14, aligned=True)
    assert now == [63, 70, 77, 84]
    month_later = recent_origins(n_days=131, count=4, horizon=14, aligned=True)
    assert month_later == [91, 98, 105, 112] and all(o % 7 == 0 for o in now + month_later)
    assert set(recent_origins(n_days=131, count=8, horizon=14, aligned=True)) & set(now)


def test_origins_between_dates_map_to_day_indices() -> None:
    dates = pd.date_range("2024-01-01", periods=100, freq="D")
    assert origins_between(dates, 3, "2024-01-11", "2024-01-31") == [10, 20, 30]
    with pytest.raises(InvalidInput, match="outside the data"):
        origins_between(dates, 3, "2023-12-01", "2024-01-31")
    with pytest.raises(InvalidInput, match="last origin"):
        origins_between(dates, 3, "2024-01-11", "2024-04-05")
    with pytest.raises(InvalidInput, match="must be a date"):
        origins_between(dates, 3, "soon", None)


def test_report_table_lists_every_candidate_and_the_champion() -> None:
    report = {
        "champion": "seasonal_naive",
        "origins": ["2024-01-01"],
        "candidates": {
            name: {
                "mae": 1.0,
                "rmse": 2.0,
                "mse": 4.0,
                "mape": None,
                "wape": 0.1,
                "relative_mae": 1.0,
                "coverage": 0.8,
            }
            for name in ("persistence", "seasonal_naive")
        },
    }
    table = report_table(report)
    assert "persistence" in table and "seasonal_naive" in table
    assert table.splitlines()[-1].endswith("seasonal_naive")


def test_a_candidate_with_another_horizon_is_rejected(weekly_history: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match="horizon 7"):
        run_backtest(weekly_history, {"persistence": Persistence(horizon=7)}, [90])


def test_a_mask_of_another_shape_is_rejected(weekly_history: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match="mask"):
        run_backtest(
            weekly_history, {"persistence": Persistence()}, [90], mask=np.ones((1, 5), bool)
        )
