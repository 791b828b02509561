"""Building and reshaping the canonical series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tractcast.data.series import build_series, series_matrix


def observations(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["date", "tract_id", "value"])
    return frame.assign(date=pd.to_datetime(frame["date"]))


def test_cumulative_gaps_are_interpolated_and_marked_imputed():
    series = build_series(
        observations([("2021-01-01", "A", 10), ("2021-01-04", "A", 16), ("2021-01-02", "B", 1)]),
        "cumulative",
    )
    a = series[series["tract_id"] == "A"]
    assert a["total_cases"].tolist() == [10, 12, 14, 16]
    assert a["new_cases"].tolist() == [10, 2, 2, 2]
    assert a["imputed"].tolist() == [False, True, True, False]
    b = series[series["tract_id"] == "B"]
    assert b["total_cases"].tolist() == [1, 1, 1, 1]
    assert b["imputed"].tolist() == [True, False, True, True]


def test_daily_gaps_follow_the_trend_between_their_neighbours_and_are_imputed():
    series = build_series(observations([("2021-01-01", "A", 2), ("2021-01-04", "A", 8)]), "daily")
    assert series["new_cases"].tolist() == [2, 4, 6, 8]
    assert series["total_cases"].tolist() == [2, 6, 12, 20]
    assert series["imputed"].tolist() == [False, True, True, False]


def test_a_cumulative_gap_is_spread_along_the_trend_and_conserves_the_increase():
    totals = [0, 10, 20, 30, 40, None, None, None, 100, 110, 120]
    rows = [(f"2021-01-{d + 1:02d}", "A", v) for d, v in enumerate(totals) if v is not None]
    series = build_series(observations(rows), "cumulative")
    new = series["new_cases"].tolist()
    assert new[5:9] == [15, 15, 15, 15]  # 60 cases over the gap and the day reporting it
    assert series["total_cases"].tolist()[8] == 100
    assert series["imputed"].tolist()[5:8] == [True, True, True]


def test_a_tract_that_stops_reporting_is_extrapolated_along_its_recent_trend():
    rows = [(f"2021-01-{d + 1:02d}", "A", 10 * (d + 1)) for d in range(10)]
    rows += [("2021-01-15", "B", 1)]
    series = build_series(observations(rows), "cumulative")
    a = series[series["tract_id"] == "A"]
    assert a["new_cases"].tolist()[10:] == [10, 10, 10, 10, 10]
    assert a["imputed"].tolist()[10:] == [True] * 5


def test_daily_counts_that_stop_are_extrapolated_then_zero_after_four_weeks():
    rows = [(f"2021-01-{d + 1:02d}", "A", 5) for d in range(7)]
    rows += [("2021-03-01", "B", 1)]
    series = build_series(observations(rows), "daily")
    a = series[series["tract_id"] == "A"]["new_cases"].to_numpy()
    assert (a[7 : 7 + 28] == 5).all() and (a[7 + 28 :] == 0).all()


def test_series_matrix_returns_tracts_by_days():
    series = build_series(
        observations([("2021-01-01", "B", 1), ("2021-01-02", "B", 3), ("2021-01-01", "A", 2)]),
        "cumulative",
    )
    tract_ids, dates, values = series_matrix(series)
    assert tract_ids == ["A", "B"]
    assert list(dates) == list(pd.date_range("2021-01-01", periods=2))
    np.testing.assert_array_equal(values, [[2, 0], [1, 2]])
