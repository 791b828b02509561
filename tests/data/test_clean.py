"""Basic repair of the canonical series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tractcast.data.clean import (
    clean_series,
    lift_transient_dips,
    offset_corrections,
    spread_dumps,
)
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


def steady_then(days: list[float], before: int = 28, rate: float = 10) -> np.ndarray:
    """Daily counts: `before` days at `rate`, then the given days, then 28 more at `rate`."""
    return np.array([[rate] * before + days + [rate] * 28])


def test_a_dump_after_a_frozen_period_is_spread_back_over_it():
    new = steady_then([0, 0, 0, 0, 0, 60])
    repaired, changed, dumps, _ = spread_dumps(new)
    assert repaired[0, 28:34].tolist() == [10] * 6
    assert repaired.sum() == new.sum()
    assert changed[0, 28:34].all() and changed.sum() == 6
    assert dumps == [{"row": 0, "start": 28, "days": 5, "cases": 60}]


def test_zeros_that_the_rate_makes_plausible_are_left_alone():
    new = steady_then([0, 0, 0, 4], rate=0.5)
    repaired, changed, dumps, frozen = spread_dumps(new)
    assert (repaired == new).all() and not changed.any()
    assert dumps == [] and frozen == []


def test_a_frozen_period_without_a_dump_is_reported_not_invented():
    new = steady_then([0] * 30 + [9])
    repaired, changed, dumps, frozen = spread_dumps(new)
    assert (repaired == new).all() and dumps == []
    assert frozen == [{"row": 0, "start": 28, "days": 30}]


def test_cleaning_spreads_dumps_flags_them_imputed_and_says_so():
    total = np.cumsum(steady_then([0, 0, 0, 0, 0, 60]), axis=1)
    cleaned, report = clean_series(series_of(total.tolist()))
    assert cleaned["new_cases"].tolist()[28:34] == [10] * 6
    assert cleaned["imputed"].tolist()[28:34] == [True] * 6
    assert cleaned["total_cases"].iloc[-1] == total[0, -1]
    assert (report["dumps_spread"], report["days_spread"], report["cases_spread"]) == (1, 6, 60)
    assert report["dumps"][0]["start"] == "2021-01-29"
