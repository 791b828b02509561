"""The global LSTM: trains, saves model.h5, loads safely, repeats itself, calibrated intervals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tractcast.errors import InvalidInput
from tractcast.evaluation.backtest import run_backtest
from tractcast.models import Forecaster, load_forecaster, make_forecaster
from tractcast.models.base import forecaster_from_params, scaled_interval_factors
from tractcast.models.baselines import Persistence, SeasonalNaive, seasonal_naive_point
from tractcast.models.lstm import (
    PERIOD,
    epoch_samples,
    growth_spread,
    interval_scales,
    level_weights,
    recency_weights,
    window_features,
    window_origins,
)

pytestmark = pytest.mark.slow

SMALL = {"units": 16, "epochs": 25, "batch_size": 64, "max_windows": 2000, "patience": 5}


def seasonal_history(n_tracts: int = 10, n_days: int = 200, seed: int = 1) -> np.ndarray:
    """Poisson counts with a strong weekly rhythm and slow trends; the last tract is all zeros."""
    rng = np.random.default_rng(seed)
    week = np.array([1.4, 1.3, 1.2, 1.1, 1.0, 0.4, 0.3])
    days = np.arange(n_days)
    levels = rng.uniform(20, 400, size=(n_tracts, 1))
    trend = 1.0 + 0.3 * np.sin(2 * np.pi * days / 150 + rng.uniform(0, 6, size=(n_tracts, 1)))
    history = rng.poisson(levels * trend * week[days % 7]).astype(float)
    history[-1] = 0.0
    return history


@pytest.fixture(scope="module")
def history() -> np.ndarray:
    return seasonal_history()


@pytest.fixture(scope="module")
def fitted(history: np.ndarray) -> Forecaster:
    forecaster = make_forecaster("lstm", **SMALL)
    forecaster.fit(history)
    return forecaster


def test_lstm_forecasts_every_tract_and_horizon_with_ordered_bounds(
    fitted: Forecaster, history: np.ndarray
) -> None:
    forecast = fitted.predict(history)
    assert forecast.point.shape == (10, 14)
    assert np.all(forecast.lower >= 0)
    assert np.all(forecast.lower <= forecast.point)
    assert np.all(forecast.point <= forecast.upper)


def test_lstm_predicts_about_zero_for_a_tract_with_no_cases(
    fitted: Forecaster, history: np.ndarray
) -> None:
    assert np.all(fitted.predict(history).point[-1] < 1.0)


def test_lstm_uses_only_the_last_lookback_days_of_a_longer_history(
    fitted: Forecaster, history: np.ndarray
) -> None:
    doubled = np.concatenate([np.full((10, 7 * 10), 5000.0), history], axis=1)
    np.testing.assert_allclose(fitted.predict(doubled).point, fitted.predict(history).point)


def test_saved_lstm_loads_back_safely_and_predicts_the_same(
    fitted: Forecaster, history: np.ndarray, tmp_path: Path
) -> None:
    fitted.save(tmp_path)
    assert h5py.is_hdf5(tmp_path / "model.h5")
    state = json.loads((tmp_path / "lstm.json").read_text())
    assert state["params"]["lookback"] == 28
    assert {level: len(scale) for level, scale in state["scales"].items()} == {
        "0.5": 14, "0.8": 14, "0.95": 14,
    }  # fmt: skip
    assert state["outputs"]["quantiles"] == pytest.approx([0.1, 0.5, 0.9])
    loaded = load_forecaster(tmp_path, "lstm")
    before, after = fitted.predict(history), loaded.predict(history)
    np.testing.assert_allclose(after.point, before.point, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.upper, before.upper, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.lower, before.lower, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.bands[0.95][1], before.bands[0.95][1], rtol=1e-5, atol=1e-6)


def test_an_lstm_saved_before_the_scaled_intervals_still_serves_its_80_percent_band(
    fitted: Forecaster, history: np.ndarray, tmp_path: Path
) -> None:
    fitted.save(tmp_path)
    state = json.loads((tmp_path / "lstm.json").read_text())
    del state["scales"]
    state["adjustment"] = [0.1] * 14  # what an older release wrote: one additive shift
    (tmp_path / "lstm.json").write_text(json.dumps(state))
    forecast = load_forecaster(tmp_path, "lstm").predict(history)
    assert forecast.bands == {}
    assert np.all(forecast.lower <= forecast.point) and np.all(forecast.point <= forecast.upper)


def test_lstm_intervals_are_nested(fitted: Forecaster, history: np.ndarray) -> None:
    intervals = fitted.predict(history).intervals()
    assert list(intervals) == [0.5, 0.8, 0.95]
    (lo50, hi50), (lo80, hi80), (lo95, hi95) = intervals.values()
    assert np.all(lo95 <= lo80 + 1e-9) and np.all(lo80 <= lo50 + 1e-9)
    assert np.all(hi50 <= hi80 + 1e-9) and np.all(hi80 <= hi95 + 1e-9)


def test_a_warm_started_fit_trains_fewer_epochs_and_still_forecasts(
    fitted: Forecaster, history: np.ndarray
) -> None:
    warm = make_forecaster("lstm", **{**SMALL, "warm_epochs": 3})
    warm.warm_start(fitted)
    warm.fit(history[:, :-7] if history.shape[1] > 150 else history)
    assert warm.epochs_trained <= 3
    cold_error = np.abs(fitted.predict(history[:, :-14]).point - history[:, -14:]).mean()
    warm_error = np.abs(warm.predict(history[:, :-14]).point - history[:, -14:]).mean()
    assert warm_error < 2 * cold_error + 1.0


def test_saved_lstm_loads_in_a_process_without_custom_objects(
    fitted: Forecaster, tmp_path: Path
) -> None:
    fitted.save(tmp_path)
    code = (
        "import keras, sys\n"
        f"model = keras.models.load_model({str(tmp_path / 'model.h5')!r},"
        " compile=False, safe_mode=True)\n"
        "assert model.output_shape == (None, 14, 3), model.output_shape\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_same_seed_and_data_give_the_same_forecast(fitted: Forecaster, history: np.ndarray) -> None:
    again = make_forecaster("lstm", **SMALL)
    again.fit(history)
    np.testing.assert_allclose(
        again.predict(history).point, fitted.predict(history).point, rtol=0.01, atol=0.01
    )


def test_the_same_fit_on_a_cpu_with_only_avx2_as_on_a_newer_one(tmp_path: Path) -> None:
    """Figures repeat across machines: oneDNN's kernels for this CPU's widest instructions
    (AVX-512 here, where there are) must not train other weights than an AVX2-only CPU's."""
    code = (
        "import hashlib, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_lstm import SMALL, seasonal_history\n"
        "from tractcast.models import make_forecaster\n"
        "history = seasonal_history()\n"
        "forecaster = make_forecaster('lstm', **{**SMALL, 'epochs': 4, 'units': 32})\n"
        "forecaster.fit(history)\n"
        "print(hashlib.sha256(forecaster.predict(history).point.tobytes()).hexdigest())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"

    def forecast_hash(**extra: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.split()[-1]

    assert forecast_hash() == forecast_hash(ONEDNN_MAX_CPU_ISA="AVX2")


def test_lstm_beats_persistence_on_a_weekly_seasonal_series(history: np.ndarray) -> None:
    candidates = {"lstm": make_forecaster("lstm", **SMALL), "persistence": Persistence()}
    scores = run_backtest(history, candidates, [history.shape[1] - 14]).scores
    assert scores["lstm"]["mae"] < scores["persistence"]["mae"]
    assert scores["lstm"]["relative_mae"] < 1.0  # and the weekly seasonal naive


def test_lstm_intervals_cover_about_eighty_percent_of_days_it_never_saw() -> None:
    history = seasonal_history(n_tracts=12, n_days=260, seed=4)
    covered = []
    for origin in (200, 230):
        forecaster = make_forecaster("lstm", **SMALL)
        forecaster.fit(history[:, :origin])
        forecast = forecaster.predict(history[:, :origin])
        actual = history[:-1, origin : origin + 14]  # the all-zero tract is trivially covered
        covered.append((actual >= forecast.lower[:-1]) & (actual <= forecast.upper[:-1]))
    assert 0.65 <= np.mean(covered) <= 0.95


def test_lstm_reads_the_all_tract_total_as_context(fitted: Forecaster, history: np.ndarray) -> None:
    others = history.copy()
    others[1:, -7:] *= 3.0  # every other tract surges in the last week; tract 0 does not
    alone, together = fitted.predict(history).point[0], fitted.predict(others).point[0]
    assert not np.allclose(alone, together)


def test_lstm_forecasts_some_tracts_as_it_would_among_all(
    fitted: Forecaster, history: np.ndarray
) -> None:
    every, rows = fitted.predict(history), np.array([4, 0, 7])
    some = fitted.predict(history, rows)  # the all-tract context still spans every tract
    # the same to float32 rounding: the network's sums may group differently in another batch
    np.testing.assert_allclose(some.point, every.point[rows], rtol=1e-6)
    np.testing.assert_allclose(some.bands[0.95][1], every.bands[0.95][1][rows], rtol=1e-6)
    surge = history.copy()
    surge[[1, 2, 3, 5, 6, 8, 9], -7:] *= 3.0  # tracts not forecast surge: the context moves
    moved = fitted.predict(surge, rows).point
    assert not np.allclose(moved, some.point, rtol=1e-3)


def test_history_too_short_to_train_and_calibrate_is_rejected(history: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match="at least"):
        make_forecaster("lstm", **SMALL).fit(history[:, :80])


def trending_history(n_tracts: int = 12, n_days: int = 320, seed: int = 7) -> np.ndarray:
    """Waves of growth and decline (up to ~25% a week) on a strong weekday pattern."""
    rng = np.random.default_rng(seed)
    week = np.array([0.3, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8])  # a Monday reporting dip
    days = np.arange(n_days)
    phase = rng.uniform(0, 2 * np.pi, size=(n_tracts, 1))
    waves = np.exp(1.5 * np.sin(2 * np.pi * days / 90 + phase))
    levels = rng.uniform(200, 2000, size=(n_tracts, 1))
    return rng.poisson(levels * waves * week[days % 7]).astype(float)


@pytest.mark.parametrize("weeks", [1, 2])
def test_with_a_zero_correction_the_lstm_forecasts_its_seasonal_anchor(
    history: np.ndarray, weeks: int
) -> None:
    forecaster = make_forecaster("lstm", **{**SMALL, "epochs": 1, "anchor_weeks": weeks})
    forecaster.fit(history)
    median = forecaster.model.get_layer("median")
    median.set_weights([np.zeros_like(w) for w in median.get_weights()])
    point = forecaster.predict(history).point
    # the same weekday's log1p cases, averaged over the last `weeks` weeks
    # (with one week, exactly the seasonal naive)
    n_days = history.shape[1]
    weekly = [seasonal_naive_point(history[:, : n_days - 7 * k], 14) for k in range(weeks)]
    expected = np.expm1(np.mean(np.log1p(weekly), axis=0))
    np.testing.assert_allclose(point, expected, rtol=1e-5, atol=1e-4)


def test_the_lstm_keeps_the_weekday_dip_and_follows_the_trend_beyond_the_naive() -> None:
    history = trending_history()
    origins = [250, 270, 290, 306]
    candidates = {"lstm": make_forecaster("lstm", **SMALL), "seasonal_naive": SeasonalNaive()}
    scores = run_backtest(history, candidates, origins).scores["lstm"]
    assert all(day["relative_mae"] < 1.0 for day in scores["per_horizon"])
    forecast = make_forecaster("lstm", **SMALL)
    forecast.fit(history[:, :306])
    point = forecast.predict(history[:, :306]).point
    mondays = (306 + np.arange(14)) % 7 == 0
    # every forecast Monday is below both days around it, in every tract
    for monday in np.flatnonzero(mondays):
        assert np.all(point[:, monday] < point[:, monday - 1])
        assert np.all(point[:, monday] < point[:, monday + 1])


def test_an_lstm_saved_before_the_anchor_keeps_forecasting_from_the_window_mean(
    fitted: Forecaster, history: np.ndarray, tmp_path: Path
) -> None:
    fitted.save(tmp_path)
    state = json.loads((tmp_path / "lstm.json").read_text())
    del state["params"]["anchor"]
    (tmp_path / "lstm.json").write_text(json.dumps(state))
    assert load_forecaster(tmp_path, "lstm").params()["anchor"] == "level"
    old_manifest = {k: v for k, v in fitted.params().items() if k != "anchor"}
    assert forecaster_from_params("lstm", old_manifest).params()["anchor"] == "level"
    assert forecaster_from_params("lstm", {}).params()["anchor"] == "seasonal"


def with_a_holiday(history: np.ndarray, day: int) -> np.ndarray:
    """Every tract reports a fifth of its cases on `day` and the missing ones the day after."""
    holiday = history.copy()
    missing = 0.8 * holiday[:, day]
    holiday[:, day] -= missing
    holiday[:, day + 1] += missing
    return np.round(holiday)


def test_with_outlier_days_on_a_holiday_in_the_input_is_not_repeated_into_next_week(
    history: np.ndarray,
) -> None:
    forecaster = make_forecaster("lstm", **SMALL, outlier_threshold=0.25)
    forecaster.fit(history)
    n_days = history.shape[1]
    holiday = with_a_holiday(history, n_days - 5)  # in the last week, the anchor's
    same_weekday = [2, 9]  # the forecast days on the holiday's weekday, one and two weeks on
    catch_up = [3, 10]  # and on the weekday after it
    usual = forecaster.predict(history).point[:-1]  # the last tract has no cases
    after = forecaster.predict(holiday).point[:-1]
    np.testing.assert_allclose(after[:, same_weekday], usual[:, same_weekday], rtol=0.2)
    assert np.all(after[:, same_weekday] > 0.8 * usual[:, same_weekday])
    np.testing.assert_allclose(after[:, catch_up], usual[:, catch_up], rtol=0.2)
    # the same network reading its input as it is (the default) repeats the dip
    forecaster.outlier_threshold = 0.0
    repeated = forecaster.predict(holiday).point[:-1]
    assert np.median(repeated[:, same_weekday] / usual[:, same_weekday]) < 0.75


def test_an_lstm_saved_before_the_outlier_days_and_recency_refits_as_it_was(
    fitted: Forecaster, tmp_path: Path
) -> None:
    fitted.save(tmp_path)
    state = json.loads((tmp_path / "lstm.json").read_text())
    new_names = (
        "outlier_threshold", "calibration_half_life", "level_weight", "window_pool",
        "growth_widening",
    )  # fmt: skip
    for name in new_names:
        del state["params"][name]
    (tmp_path / "lstm.json").write_text(json.dumps(state))
    loaded = load_forecaster(tmp_path, "lstm").params()
    assert [loaded[name] for name in new_names] == [0.0, 0.0, 0.0, 1, 0.0]
    old_manifest = {k: v for k, v in fitted.params().items() if k not in new_names}
    refitted = forecaster_from_params("lstm", old_manifest).params()
    assert [refitted[name] for name in new_names] == [0.0, 0.0, 0.0, 1, 0.0]
    new = forecaster_from_params("lstm", {}).params()
    assert [new[name] for name in new_names[1:]] == [14.0, 0.5, 4, 0.5]


def test_each_epoch_trains_on_a_fresh_draw_from_the_window_pool() -> None:
    """A pool four times an epoch: every epoch has its own windows, together more than one
    epoch's worth, and the same seed draws the same epochs."""
    pool = np.arange(400, dtype=np.float32)[:, None]

    def epochs(seed: int) -> list[np.ndarray]:
        batches = epoch_samples(pool, pool, np.ones(400), 100, 32, np.random.default_rng(seed))
        drawn = []
        for _ in range(3):
            drawn.append(np.concatenate([batches[i][0][:, 0] for i in range(len(batches))]))
            batches.on_epoch_end()
        return drawn

    drawn = epochs(1)
    assert [len(np.unique(epoch)) for epoch in drawn] == [100, 100, 100]
    assert len(np.unique(np.concatenate(drawn))) > 200
    assert all(np.array_equal(a, b) for a, b in zip(drawn, epochs(1), strict=True))
    assert not np.array_equal(drawn[0], epochs(2)[0])


def test_a_city_window_weighs_more_than_a_village_window_in_training() -> None:
    """Errors are counted in cases: at power 0.5, a window of 100 times the cases weighs 10
    times as much; power 0 weighs every window alike; the weights average 1."""
    daily = np.array([[100.0] * 56, [10_000.0] * 56, [1_000.0] * 56])
    log_history = np.log1p(daily)
    features, _, _ = window_features(
        log_history, np.log1p(daily.sum(axis=0)), np.arange(3)[:, None],
        np.broadcast_to(np.arange(28, 56), (3, 28)), first_weekday=0,
    )  # fmt: skip
    weights = level_weights(features, 0.5)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(10.0, rel=0.01)
    assert weights[2] / weights[0] == pytest.approx(np.sqrt(10.0), rel=0.01)
    np.testing.assert_allclose(level_weights(features, 0.0), 1.0)


def test_recent_held_out_days_weigh_more_in_the_interval_calibration() -> None:
    """Calm days long ago, volatile days lately: the recency-weighted band is the wider."""
    rng = np.random.default_rng(0)
    n, horizon = 2000, 3
    median, gaps = np.zeros((n, horizon)), np.ones((n, horizon))
    targets = rng.normal(size=(n, horizon)) * np.where(np.arange(n) < n // 2, 0.5, 2.0)[:, None]
    origins = np.arange(n) // 100  # 20 days of origins, the volatile half the newest
    alike = scaled_interval_factors(median, gaps, gaps, targets, 0.8)
    recent = scaled_interval_factors(
        median, gaps, gaps, targets, 0.8, recency_weights(origins, 3.0)
    )
    assert np.all(recent > 1.3 * alike)
    half = gaps[n // 2 :]
    newest_only = scaled_interval_factors(median[n // 2 :], half, half, targets[n // 2 :], 0.8)
    np.testing.assert_allclose(recent, newest_only, rtol=0.1)
    assert recency_weights(origins, 0.0) is None


def regime_windows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of `n` windows, every second one's tract level jumping by a factor of 3 in its last
    week, and targets whose errors are 5/3 as large after such a jump as in a steady tract."""
    lookback, horizon = 28, 7
    moving = np.arange(n) % 2 == 1
    log_history = np.full((n, lookback), np.log1p(200.0)) + rng.normal(0, 0.05, (n, lookback))
    log_history[moving, -PERIOD:] += np.log(3.0)
    features, _, _ = window_features(
        log_history, np.log1p(np.expm1(log_history).sum(axis=0)), np.arange(n)[:, None],
        np.broadcast_to(np.arange(lookback), (n, lookback)), 0,
    )  # fmt: skip
    targets = rng.normal(size=(n, horizon)) * np.where(moving, 0.5, 0.3)[:, None]
    return features, targets


def test_bands_widen_where_a_tract_level_jumped_and_both_kinds_stay_covered() -> None:
    """Held-out windows where half the tracts just tripled: one factor for all over-covers the
    steady tracts and under-covers the moving ones; the growth widening covers both near 80%."""
    rng = np.random.default_rng(0)
    quantiles = np.zeros((4000, 7, 3))
    quantiles[..., 0], quantiles[..., 2] = -0.4, 0.4  # the network's gaps, alike for all
    held_out, held_targets = regime_windows(4000, rng)
    new, new_targets = regime_windows(4000, rng)  # days the calibration never saw
    moving = np.arange(4000) % 2 == 1
    for widening, steady_range, moving_range in (
        (0.0, (0.88, 1.0), (0.5, 0.72)),
        (0.5, (0.75, 0.85), (0.75, 0.85)),
    ):
        spread = growth_spread(held_out, widening)
        fitted = interval_scales(held_targets, quantiles, spread=spread)[0.8]
        half_width = 0.4 * fitted * growth_spread(new, widening)
        covered = np.abs(new_targets) <= half_width
        assert steady_range[0] <= covered[~moving].mean() <= steady_range[1]
        assert moving_range[0] <= covered[moving].mean() <= moving_range[1]
    assert np.all(growth_spread(new[moving], 0.5) > 1.4)  # 1 + 0.5 x log(3)
    assert np.all(growth_spread(new[~moving], 0.5) < 1.1)
    np.testing.assert_array_equal(growth_spread(new, 0.0), 1.0)


def test_every_tract_gets_training_windows_when_tracts_outnumber_the_sample() -> None:
    """10,000 tracts and a 20,000-window sample: a uniform draw would leave ~13% untrained."""
    rng = np.random.default_rng(0)
    pairs = window_origins(10_000, 28, 1_000, 20_000, rng)
    assert set(pairs[:, 0].tolist()) == set(range(10_000))
    assert 20_000 < len(pairs) < 22_000 and len(np.unique(pairs, axis=0)) == len(pairs)
    assert pairs[:, 1].min() >= 28 and pairs[:, 1].max() <= 1_000
    # A sample that covers every tract by itself is left as it was drawn.
    few = window_origins(107, 28, 1_700, 20_000, np.random.default_rng(1))
    uniform = np.random.default_rng(1).choice(107 * 1_673, size=20_000, replace=False)
    assert len(few) == 20_000 and (few[:, 0] == np.sort(uniform) // 1_673).all()
