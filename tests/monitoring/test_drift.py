"""Input drift: PSI and KS of recent log1p daily new cases against a saved reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tractcast.errors import InvalidInput
from tractcast.monitoring.drift import check_drift, ks_statistic, psi, reference_sample


def daily_cases(scale: float, days: int = 60, tracts: int = 30, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(scale * rng.uniform(0.5, 2.0, (tracts, 1)), (tracts, days)).astype(float)


def dates(days: int = 60) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=days, freq="D")


def test_the_same_kind_of_days_is_no_drift() -> None:
    reference = reference_sample(daily_cases(40, seed=1), dates=dates())
    check = check_drift(reference, daily_cases(40, seed=2), None, dates(), threshold=0.25)
    assert check is not None
    assert check.psi < 0.1 and check.ks < 0.15
    assert not check.drifted


def test_a_tenfold_wave_is_drift_by_psi_and_ks() -> None:
    reference = reference_sample(daily_cases(40), dates=dates())
    check = check_drift(reference, daily_cases(400, seed=3), None, dates(), threshold=0.25)
    assert check is not None and check.drifted
    assert check.psi > 1.0 and check.ks > 0.6
    assert check.to_dict()["drifted"] is True
    assert (check.reference_end, check.recent_end) == ("2024-02-29", "2024-02-29")


def test_the_reference_is_small_json_of_the_last_28_days() -> None:
    history = daily_cases(40, days=90)
    history[:, :-28] = 10_000  # only the last four weeks count
    reference = reference_sample(history, dates=dates(90))
    assert reference["days"] == 28 and reference["values"] == 30 * 28
    assert reference["end"] == "2024-03-30"
    assert max(reference["quantiles"]) < np.log1p(1_000)
    assert len(json.dumps(reference)) < 2_000


def test_imputed_days_are_left_out_of_the_inputs() -> None:
    history = daily_cases(40)
    observed = np.ones_like(history, dtype=bool)
    history[:, -5:] = 1e6
    observed[:, -5:] = False
    reference = reference_sample(daily_cases(40, seed=4), dates=dates())
    check = check_drift(reference, history, observed, dates(), threshold=0.25)
    assert check is not None and not check.drifted
    assert check.values == 30 * 23


def test_many_zero_days_stay_one_bin_and_a_shift_off_zero_is_seen() -> None:
    quiet = np.zeros((20, 28))
    quiet[:, ::7] = 3.0  # mostly zeros, a weekly report
    busy = np.full((20, 28), 50.0)
    assert psi(np.log1p(quiet).ravel(), np.log1p(quiet).ravel()) == pytest.approx(0.0)
    assert psi(np.log1p(quiet).ravel(), np.log1p(busy).ravel()) > 1.0
    assert ks_statistic(np.log1p(quiet).ravel(), np.log1p(busy).ravel()) == 1.0


def test_nothing_to_compare_is_no_check_and_an_empty_sample_is_refused() -> None:
    empty = {"days": 28, "quantiles": []}
    assert check_drift(empty, daily_cases(40), None, dates(), threshold=0.25) is None
    with pytest.raises(InvalidInput, match="no finite values"):
        psi(np.array([]), np.array([1.0]))
