"""Baseline forecasters: exact point forecasts, calibrated intervals, save and load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tractcast.errors import InvalidInput
from tractcast.models import load_forecaster, make_forecaster
from tractcast.models.baselines import MovingAverage, Persistence, SeasonalNaive

TINY = np.array(
    [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 7.0, 0.0]]
)
BASELINES = ["persistence", "seasonal_naive", "moving_average"]


@pytest.fixture
def noisy_history() -> np.ndarray:
    """Five tracts of Poisson counts with a weekly rhythm over 120 days."""
    rng = np.random.default_rng(0)
    week = np.array([1.2, 1.1, 1.0, 1.0, 1.1, 0.8, 0.6])
    levels = np.array([[3.0], [20.0], [50.0], [200.0], [1000.0]])
    return rng.poisson(levels * np.tile(week, 18)[:120]).astype(float)


def test_persistence_repeats_the_last_day() -> None:
    forecaster = Persistence(horizon=3)
    forecaster.fit(TINY)
    np.testing.assert_array_equal(forecaster.predict(TINY).point, [[8, 8, 8], [0, 0, 0]])


def test_seasonal_naive_repeats_the_same_weekday_of_last_week() -> None:
    forecaster = SeasonalNaive(horizon=9)
    forecaster.fit(TINY)
    expected = [[2, 3, 4, 5, 6, 7, 8, 2, 3], [0, 0, 0, 0, 0, 7, 0, 0, 0]]
    np.testing.assert_array_equal(forecaster.predict(TINY).point, expected)


def test_moving_average_repeats_the_mean_of_the_last_week() -> None:
    forecaster = MovingAverage(horizon=2)
    forecaster.fit(TINY)
    np.testing.assert_allclose(forecaster.predict(TINY).point, [[5, 5], [1, 1]])


@pytest.mark.parametrize("family", BASELINES)
def test_interval_contains_the_point_and_never_goes_below_zero(
    family: str, noisy_history: np.ndarray
) -> None:
    forecaster = make_forecaster(family)
    forecaster.fit(noisy_history)
    forecast = forecaster.predict(noisy_history)
    assert forecast.point.shape == forecast.lower.shape == forecast.upper.shape == (5, 14)
    assert np.all(forecast.lower >= 0)
    assert np.all(forecast.lower <= forecast.point)
    assert np.all(forecast.point <= forecast.upper)
    assert np.any(forecast.upper > forecast.lower)


@pytest.mark.parametrize("family", BASELINES)
def test_interval_covers_about_eighty_percent_of_later_days(
    family: str, noisy_history: np.ndarray
) -> None:
    covered = []
    for end in range(70, 106, 5):
        forecaster = make_forecaster(family)
        forecaster.fit(noisy_history[:, :end])
        forecast = forecaster.predict(noisy_history[:, :end])
        actual = noisy_history[:, end : end + 14]
        covered.append((actual >= forecast.lower) & (actual <= forecast.upper))
    assert 0.6 <= np.mean(covered) <= 0.97


@pytest.mark.parametrize("family", BASELINES)
def test_saved_baseline_loads_back_and_predicts_the_same(
    family: str, noisy_history: np.ndarray, tmp_path: Path
) -> None:
    forecaster = make_forecaster(family, horizon=7)
    forecaster.fit(noisy_history)
    forecaster.save(tmp_path)
    assert json.loads((tmp_path / "params.json").read_text())["family"] == family
    loaded = load_forecaster(tmp_path, family)
    assert loaded.family == family and loaded.horizon == 7
    before, after = forecaster.predict(noisy_history), loaded.predict(noisy_history)
    np.testing.assert_allclose(after.point, before.point)
    np.testing.assert_allclose(after.lower, before.lower)
    np.testing.assert_allclose(after.upper, before.upper)


def test_params_are_json_serialisable() -> None:
    for family in BASELINES:
        assert json.loads(json.dumps(make_forecaster(family).params()))["horizon"] == 14


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="unknown forecaster family"):
        make_forecaster("prophet")


def test_predicting_before_fitting_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        Persistence().predict(TINY)


def test_history_shorter_than_a_week_is_rejected_by_weekly_baselines() -> None:
    with pytest.raises(InvalidInput):
        SeasonalNaive().fit(TINY[:, :5])


def test_history_with_nan_is_rejected() -> None:
    broken = TINY.copy()
    broken[0, 3] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        Persistence().fit(broken)


@pytest.mark.parametrize("family", BASELINES)
def test_the_50_80_and_95_percent_intervals_are_nested_and_calibrated(
    family: str, noisy_history: np.ndarray
) -> None:
    inside: dict[float, list[np.ndarray]] = {0.5: [], 0.8: [], 0.95: []}
    for end in range(70, 106, 5):
        forecaster = make_forecaster(family)
        forecaster.fit(noisy_history[:, :end])
        forecast = forecaster.predict(noisy_history[:, :end])
        intervals = forecast.intervals()
        assert list(intervals) == [0.5, 0.8, 0.95]
        (lo50, hi50), (lo80, hi80), (lo95, hi95) = intervals.values()
        assert np.all(lo95 <= lo80) and np.all(lo80 <= lo50) and np.all(lo50 <= forecast.point)
        assert np.all(forecast.point <= hi50) and np.all(hi50 <= hi80) and np.all(hi80 <= hi95)
        actual = noisy_history[:, end : end + 14]
        for level, (lower, upper) in intervals.items():
            inside[level].append((actual >= lower) & (actual <= upper))
    shares = {level: float(np.mean(hits)) for level, hits in inside.items()}
    assert shares[0.5] < shares[0.8] < shares[0.95]
    assert 0.3 <= shares[0.5] <= 0.75 and shares[0.95] >= 0.85


def test_a_baseline_saved_before_the_extra_intervals_loads_with_the_80_percent_one(
    noisy_history: np.ndarray, tmp_path: Path
) -> None:
    forecaster = make_forecaster("seasonal_naive")
    forecaster.fit(noisy_history)
    forecaster.save(tmp_path)
    state = json.loads((tmp_path / "params.json").read_text())
    del state["bands"]  # what an older release wrote
    (tmp_path / "params.json").write_text(json.dumps(state))
    forecast = load_forecaster(tmp_path, "seasonal_naive").predict(noisy_history)
    assert forecast.bands == {}
    np.testing.assert_allclose(forecast.upper, forecaster.predict(noisy_history).upper)
