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


def test_daily_gaps_are_zero_and_marked_imputed():
    series = build_series(observations([("2021-01-01", "A", 3), ("2021-01-03", "A", 4)]), "daily")
    assert series["new_cases"].tolist() == [3, 0, 4]
    assert series["total_cases"].tolist() == [3, 3, 7]
    assert series["imputed"].tolist() == [False, True, False]


def test_series_matrix_returns_tracts_by_days():
    series = build_series(
        observations([("2021-01-01", "B", 1), ("2021-01-02", "B", 3), ("2021-01-01", "A", 2)]),
        "cumulative",
    )
    tract_ids, dates, values = series_matrix(series)
    assert tract_ids == ["A", "B"]
    assert list(dates) == list(pd.date_range("2021-01-01", periods=2))
    np.testing.assert_array_equal(values, [[2, 0], [1, 2]])
