"""Basic repair of the canonical series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tractcast.data.clean import clean_series, lift_transient_dips, offset_corrections
from tractcast.data.series import daily_from_cumulative, series_frame


def series_of(totals: list[list[float]]) -> pd.DataFrame:
    total = np.array(totals, dtype=float)
    dates = pd.date_range("2021-01-01", periods=total.shape[1], freq="D")
    ids = [f"{i:03d}" for i in range(len(totals))]
    return series_frame(ids, dates, daily_from_cumulative(total), total, np.zeros_like(total, bool))


def test_a_dip_that_recovers_is_lifted_to_the_level_before_it():
    lifted = lift_transient_dips(np.array([[10.0, 20, 0, 0, 21, 25]]))
    assert lifted.tolist() == [[10, 20, 20, 20, 21, 25]]


def test_a_permanent_drop_is_offset_against_the_latest_earlier_days():
    assert offset_corrections(np.array([[5.0, 10, 30, 22, 24]])).tolist() == [[5, 10, 22, 22, 24]]


def test_a_spike_followed_by_its_reversal_is_cancelled():
    cleaned, _ = clean_series(series_of([[10, 12, 500, 14, 15]]))
    assert cleaned["new_cases"].tolist() == [10, 2, 2, 0, 1]


def test_cleaning_leaves_no_negative_day_and_conserves_each_total():
    series = series_of([[3, 8, 4, 9, 9, 7, 12], [0, 5, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    cleaned, report = clean_series(series)
    assert (cleaned["new_cases"] >= 0).all()
    sums = cleaned.groupby("tract_id")["new_cases"].sum()
    last = series.groupby("tract_id")["total_cases"].last()
    assert sums.equals(last)
    assert cleaned.groupby("tract_id")["new_cases"].cumsum().equals(cleaned["total_cases"])
    assert report["negative_days_before"] == 3
    assert report["negative_days_after"] == 0
    assert report["tracts_changed"] == 2


def test_a_clean_series_is_returned_unchanged():
    series = series_of([[1, 2, 3], [0, 0, 4]])
    cleaned, report = clean_series(series)
    assert cleaned.equals(series)
    assert report["days_changed"] == 0
