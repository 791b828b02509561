"""Live error: bundles' forecasts scored against the actuals that arrived later."""

from __future__ import annotations

import pandas as pd
import pytest

from tractcast.monitoring.live_error import (
    bundle_actuals,
    compare_on_same_points,
    live_error,
    live_skill,
    observed_actuals,
    scored_points,
    with_naive,
)
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, bundle_id_for


def bundle(version: str, as_of: str, values: dict[str, float], horizon: int = 14) -> Bundle:
    """A bundle forecasting a flat `values[tract]` for the `horizon` days after as_of."""
    days = pd.date_range(pd.Timestamp(as_of) + pd.Timedelta(days=1), periods=horizon)
    tracts = {
        tract: TractForecast(
            tract,
            as_of,
            1000,
            10,
            tuple(ForecastDay(d.date().isoformat(), value, 0.0, 2 * value) for d in days),
        )
        for tract, value in values.items()
    }
    data_version = f"d{as_of.replace('-', '')}"
    return Bundle(
        bundle_id_for(version, data_version),
        version,
        data_version,
        as_of,
        "2024-01-01T00:00:00+00:00",
        horizon,
        tracts,
    )


def series(first: str, last: str, values: dict[str, float], imputed: set[str] = frozenset()):
    """A canonical series: every tract's daily new cases, flat, some days imputed."""
    rows = [
        {
            "date": day,
            "tract_id": tract,
            "new_cases": value,
            "total_cases": 0.0,
            "imputed": day.date().isoformat() in imputed,
        }
        for day in pd.date_range(first, last)
        for tract, value in values.items()
    ]
    return pd.DataFrame(rows)


ACTUALS = observed_actuals(series("2024-01-01", "2024-02-29", {"A": 10.0, "B": 30.0}))


def test_a_bundle_is_scored_on_the_days_that_have_arrived() -> None:
    made = bundle("v0001-lstm", "2024-02-20", {"A": 12.0, "B": 30.0})  # 9 of 14 days known
    points = scored_points([made], ACTUALS)
    assert len(points) == 2 * 9
    error = live_error("v0001-lstm", points, days=14)
    assert (error.days, error.points) == (9, 18)
    assert (error.start, error.end) == ("2024-02-21", "2024-02-29")
    assert error.mae == pytest.approx(1.0)
    assert error.wape == pytest.approx(2 * 9 / (40 * 9))


def test_only_the_most_recent_days_count() -> None:
    old = bundle("v0001-lstm", "2024-01-10", {"A": 100.0, "B": 100.0})  # far off, long ago
    new = bundle("v0001-lstm", "2024-02-10", {"A": 10.0, "B": 30.0})  # exact
    error = live_error("v0001-lstm", scored_points([old, new], ACTUALS), days=7)
    assert error.mae == 0.0 and error.days == 7
    assert error.start == "2024-02-18" and error.end == "2024-02-24"


def test_imputed_actuals_are_never_scored() -> None:
    guessed = {d.date().isoformat() for d in pd.date_range("2024-02-11", "2024-02-17")}
    actuals = observed_actuals(series("2024-01-01", "2024-02-29", {"A": 10.0}, guessed))
    points = scored_points([bundle("v0001-lstm", "2024-02-10", {"A": 10.0})], actuals)
    assert sorted(points["date"].dt.day) == list(range(18, 25))


def test_nothing_scored_yet_is_an_empty_error() -> None:
    error = live_error("v0001-lstm", scored_points([], ACTUALS), days=14)
    assert (error.days, error.points, error.mae, error.wape) == (0, 0, None, None)


def test_champion_and_predecessor_compare_only_on_forecasts_both_made() -> None:
    champion = [
        bundle("v0002-lstm", "2024-02-01", {"A": 20.0, "B": 30.0}),
        bundle("v0002-lstm", "2024-02-15", {"A": 99.0, "B": 99.0}),  # predecessor has no twin
    ]
    predecessor = [bundle("v0001-persistence", "2024-02-01", {"A": 10.0, "B": 20.0})]
    comparison = compare_on_same_points(
        "v0002-lstm",
        scored_points(champion, ACTUALS),
        "v0001-persistence",
        scored_points(predecessor, ACTUALS),
        days=14,
    )
    assert (comparison.days, comparison.points) == (14, 28)
    assert (comparison.start, comparison.end) == ("2024-02-02", "2024-02-15")
    assert comparison.champion_mae == pytest.approx(5.0)
    assert comparison.predecessor_mae == pytest.approx(5.0)
    assert comparison.champion_wape == comparison.predecessor_wape == pytest.approx(0.25)


def weekly_series(first: str, last: str) -> pd.DataFrame:
    """One tract whose daily cases follow a weekly pattern: 7 on Mondays ... 1 on Sundays."""
    days = pd.date_range(first, last)
    return pd.DataFrame(
        {
            "date": days,
            "tract_id": "A",
            "new_cases": [7.0 - day.weekday() for day in days],
            "total_cases": 0.0,
            "imputed": False,
        }
    )


def test_the_seasonal_naive_of_a_point_is_the_same_weekday_a_week_before_as_of() -> None:
    actuals = observed_actuals(weekly_series("2024-01-01", "2024-02-29"))
    points = with_naive(scored_points([bundle("v1", "2024-01-14", {"A": 4.0})], actuals), actuals)
    assert len(points) == 14
    # on a weekly pattern the naive is exact at every horizon
    assert (points["naive"] == points["actual"]).all()


def test_live_skill_is_the_mae_ratio_to_the_naive_per_horizon_on_the_same_points() -> None:
    actuals = observed_actuals(weekly_series("2024-01-01", "2024-02-29"))
    flat = with_naive(scored_points([bundle("v1", "2024-01-14", {"A": 4.0})], actuals), actuals)
    # make the naive miss by 2 everywhere, so each horizon's ratio is |4 - actual| / 2
    flat["naive"] = flat["actual"] + 2.0
    skill = live_skill("v1", flat, days=14)
    assert skill.points == 14 and len(skill.per_horizon) == 14
    first = skill.per_horizon[0]  # 2024-01-15 is a Monday: actual 7, forecast 4
    assert (first["horizon"], first["mae"], first["naive_mae"]) == (1, 3.0, 2.0)
    assert first["relative_mae"] == 1.5
    expected = (flat["predicted"] - flat["actual"]).abs().mean() / 2.0
    assert skill.relative_mae == pytest.approx(expected, abs=1e-4)


def test_points_without_a_naive_forecast_are_left_out_of_both() -> None:
    actuals = observed_actuals(weekly_series("2024-01-10", "2024-02-29"))  # starts after as_of-6
    points = with_naive(scored_points([bundle("v1", "2024-01-14", {"A": 4.0})], actuals), actuals)
    assert points["naive"].notna().all() and len(points) < 14


def test_a_bundles_histories_are_the_actuals_it_holds() -> None:
    tract = TractForecast("A", "2024-01-03", 100, 3, (), history=(1, 2, 3))
    newest = Bundle("v1@d", "v1", "d", "2024-01-03", "2024-01-03T00:00:00+00:00", 14, {"A": tract})
    actuals = bundle_actuals(newest)
    assert actuals.loc[("A", pd.Timestamp("2024-01-01"))] == 1.0
    assert actuals.loc[("A", pd.Timestamp("2024-01-03"))] == 3.0
