"""The ensemble candidate: per-horizon weights fitted on recent days, calibrated intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tractcast.evaluation.backtest import run_backtest
from tractcast.models import ensemble as ensemble_module
from tractcast.models import load_forecaster, make_forecaster
from tractcast.models.base import Forecast, clear_fits
from tractcast.models.baselines import SeasonalNaive
from tractcast.models.ensemble import best_weights, calibration_tracts, simplex_grid

MEMBERS = {"persistence": {}, "seasonal_naive": {}, "moving_average": {}}


@pytest.fixture
def weekly_history() -> np.ndarray:
    """Eight tracts with a strong weekly rhythm and Poisson noise over 200 days."""
    rng = np.random.default_rng(3)
    week = np.array([1.5, 1.3, 1.2, 1.0, 1.0, 0.5, 0.3])
    levels = rng.uniform(20, 300, size=(8, 1))
    return rng.poisson(levels * np.tile(week, 30)[:200]).astype(float)


def test_the_weight_grid_covers_the_simplex() -> None:
    grid = simplex_grid(3, 0.5)
    assert sorted(map(tuple, grid.tolist())) == sorted(
        [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)]
    )
    np.testing.assert_allclose(simplex_grid(4, 0.1).sum(axis=1), 1.0)


def test_each_horizon_gets_the_weights_with_the_lowest_error() -> None:
    actual = np.array([[10.0, 10.0]])
    # member 0 is exact at horizon 1, member 1 at horizon 2
    points = np.array([[[10.0, 0.0]], [[0.0, 10.0]]])
    weights = best_weights(points, actual, simplex_grid(2, 0.5))
    assert weights.shape == (7, 2, 2)  # the same for every weekday of the forecast day
    for weekday in range(7):
        np.testing.assert_allclose(weights[weekday], [[1.0, 0.0], [0.0, 1.0]])


def test_on_many_tracts_the_calibration_covers_every_origin_of_a_spread_of_tracts() -> None:
    assert calibration_tracts(107, 29).tolist() == list(range(107))  # a country's provinces: all
    tracts = calibration_tracts(10_000, 29)
    assert len(tracts) * 29 <= 40_000
    assert tracts.min() == 0 and tracts.max() == 9_999  # spread over all of them
    assert np.all(np.diff(tracts) > 0)


def test_choosing_on_a_spread_of_tracts_finds_the_weights_all_tracts_would() -> None:
    rng = np.random.default_rng(5)
    n_tracts, n_origins, horizon = 3_000, 29, 14
    actual = rng.poisson(50, (n_origins * n_tracts, horizon)).astype(float)
    # member 0 is close at the first week, member 1 at the second
    near, far = actual + rng.normal(0, 2, actual.shape), actual + rng.normal(0, 20, actual.shape)
    points = np.stack([np.hstack([near[:, :7], far[:, 7:]]), np.hstack([far[:, :7], near[:, 7:]])])
    weekdays = (np.arange(n_origins)[:, None] + np.arange(horizon)) % 7
    groups = np.repeat(weekdays, n_tracts, axis=0)  # rows are origin-major, as in a fit
    grid = simplex_grid(2, 0.1)
    everything = best_weights(points, actual, grid, groups)
    tracts = calibration_tracts(n_tracts, n_origins)
    rows = (np.arange(n_origins)[:, None] * n_tracts + tracts[None, :]).ravel()
    assert len(rows) < len(actual)
    chosen = best_weights(points[:, rows], actual[rows], grid, groups[rows])
    np.testing.assert_allclose(chosen, everything)


def test_on_a_weekly_series_the_ensemble_leans_on_the_seasonal_naive(
    weekly_history: np.ndarray,
) -> None:
    ensemble = make_forecaster("ensemble", members=MEMBERS)
    ensemble.fit(weekly_history)
    weights = ensemble.weights_table()
    # persistence and the weekly mean miss the weekday rhythm; the seasonal naive keeps it
    assert np.mean(weights["seasonal_naive"]) > np.mean(weights["persistence"])
    assert np.all(np.isclose(np.sum([weights[f] for f in MEMBERS], axis=0), 1.0))


def test_on_many_tracts_the_members_forecast_a_spread_of_tracts_and_every_tract_is_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    week = np.array([1.5, 1.3, 1.2, 1.0, 1.0, 0.5, 0.3])
    history = rng.poisson(rng.uniform(20, 300, (60, 1)) * np.tile(week, 30)[:200]).astype(float)
    monkeypatch.setattr(ensemble_module, "CALIBRATION_ROWS", 29 * 12)  # 12 of the 60 tracts
    asked: list[int] = []
    original = SeasonalNaive.predict

    def counting(
        self: SeasonalNaive, past: np.ndarray, tracts: np.ndarray | None = None
    ) -> Forecast:
        forecast = original(self, past, tracts)
        asked.append(len(forecast.point))
        return forecast

    monkeypatch.setattr(SeasonalNaive, "predict", counting)
    ensemble = make_forecaster("ensemble", members=MEMBERS)
    ensemble.fit(history)
    assert asked == [12] * 29  # 12 tracts at each of the 29 calibration origins
    assert np.mean(ensemble.weights_table()["seasonal_naive"]) > 0.5
    forecast = ensemble.predict(history)
    assert forecast.point.shape == (60, 14)  # every tract is forecast
    some = ensemble.predict(history, np.array([3, 0]))
    np.testing.assert_array_equal(some.point, forecast.point[[3, 0]])
    np.testing.assert_array_equal(some.upper, forecast.upper[[3, 0]])


def test_the_ensemble_is_no_worse_than_its_best_member_on_later_days(
    weekly_history: np.ndarray,
) -> None:
    errors: dict[str, list[float]] = {"ensemble": [], **{f: [] for f in MEMBERS}}
    for end in range(150, 187, 6):
        past, actual = weekly_history[:, :end], weekly_history[:, end : end + 14]
        for family in errors:
            options = {"members": MEMBERS} if family == "ensemble" else {}
            forecaster = make_forecaster(family, **options)
            forecaster.fit(past)
            errors[family].append(np.mean(np.abs(forecaster.predict(past).point - actual)))
    best_member = min(np.mean(errors[f]) for f in MEMBERS)
    assert np.mean(errors["ensemble"]) <= 1.05 * best_member


def test_ensemble_intervals_are_nested_and_cover_later_days(weekly_history: np.ndarray) -> None:
    inside: dict[float, list[np.ndarray]] = {0.5: [], 0.8: [], 0.95: []}
    for end in range(150, 187, 6):
        ensemble = make_forecaster("ensemble", members=MEMBERS)
        ensemble.fit(weekly_history[:, :end])
        forecast = ensemble.predict(weekly_history[:, :end])
        intervals = forecast.intervals()
        assert np.all(intervals[0.95][0] <= intervals[0.5][0])
        assert np.all(intervals[0.5][1] <= intervals[0.95][1])
        actual = weekly_history[:, end : end + 14]
        for level, (lower, upper) in intervals.items():
            inside[level].append((actual >= lower) & (actual <= upper))
    shares = {level: float(np.mean(hits)) for level, hits in inside.items()}
    assert shares[0.5] < shares[0.8] < shares[0.95]
    assert 0.65 <= shares[0.8] <= 0.95


def test_a_saved_ensemble_loads_back_and_predicts_the_same(
    weekly_history: np.ndarray, tmp_path: Path
) -> None:
    ensemble = make_forecaster("ensemble", members=MEMBERS)
    ensemble.fit(weekly_history)
    ensemble.save(tmp_path)
    assert (tmp_path / "members" / "seasonal_naive" / "params.json").is_file()
    again = load_forecaster(tmp_path, "ensemble")
    before, after = ensemble.predict(weekly_history), again.predict(weekly_history)
    np.testing.assert_allclose(after.point, before.point)
    np.testing.assert_allclose(after.bands[0.95][1], before.bands[0.95][1])


def test_the_same_history_gives_the_same_weights_and_scales(weekly_history: np.ndarray) -> None:
    first = make_forecaster("ensemble", members=MEMBERS)
    second = make_forecaster("ensemble", members=MEMBERS)
    first.fit(weekly_history[:, :150])
    second.fit(weekly_history[:, :150].copy())
    np.testing.assert_array_equal(first.weights, second.weights)
    np.testing.assert_array_equal(first.scales[0.8], second.scales[0.8])


@pytest.mark.slow
def test_the_ensembles_scores_do_not_depend_on_which_fits_were_made_before() -> None:
    """Same data and configuration, same metrics: shared fits are the fits it would make."""
    rng = np.random.default_rng(5)
    week = np.array([1.4, 1.3, 1.2, 1.1, 1.0, 0.4, 0.3])
    history = rng.poisson(rng.uniform(20, 200, (6, 1)) * np.tile(week, 40)[:260]).astype(float)
    small = {"units": 8, "epochs": 3, "max_windows": 600, "warm_epochs": 2}
    lstm = make_forecaster("lstm", **small)
    members = {"lstm": lstm.params(), **MEMBERS}
    candidates = {"lstm": lstm, "ensemble": make_forecaster("ensemble", members=members)}
    origins = [232, 239]
    clear_fits()
    together = run_backtest(history, candidates, origins).scores["ensemble"]
    clear_fits()
    alone = run_backtest(history, {"ensemble": candidates["ensemble"]}, origins).scores["ensemble"]
    assert alone["wis"] == together["wis"] and alone["mae"] == together["mae"]


def test_weights_by_weekday_follow_the_weekday_each_member_gets_right() -> None:
    actual = np.array([[10.0, 10.0], [10.0, 10.0]])
    # member 0 is exact on the row whose days are weekday 0, member 1 on weekday 1
    points = np.array([[[10.0, 10.0], [0.0, 0.0]], [[0.0, 0.0], [10.0, 10.0]]])
    groups = np.array([[0, 0], [1, 1]])
    weights = best_weights(points, actual, simplex_grid(2, 0.5), groups)
    np.testing.assert_allclose(weights[0], [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(weights[1], [[0.0, 1.0], [0.0, 1.0]])
