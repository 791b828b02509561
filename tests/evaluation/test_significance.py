"""The paired Diebold-Mariano test with a Newey-West variance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tractcast.errors import InvalidInput
from tractcast.evaluation.significance import diebold_mariano, newey_west_variance, overlap_lags


def test_without_lags_the_variance_is_the_plain_variance() -> None:
    values = np.array([1.0, 3.0, 2.0, 6.0])
    assert newey_west_variance(values, 0) == pytest.approx(np.var(values))


def test_positive_autocorrelation_widens_the_variance() -> None:
    trending = np.array([1.0, 1.1, 1.2, 2.0, 2.1, 2.2, 3.0, 3.1])
    assert newey_west_variance(trending, 2) > newey_west_variance(trending, 0)


def test_weekly_origins_with_a_two_week_horizon_overlap_by_one() -> None:
    assert overlap_lags([0, 7, 14, 21], 14) == 1
    assert overlap_lags([0, 30, 60], 14) == 0
    assert overlap_lags([0, 1, 2, 3], 14) == 3


def test_identical_losses_are_never_an_improvement() -> None:
    losses = [10.0, 20.0, 30.0, 40.0]
    result = diebold_mariano(losses, losses, lags=1)
    assert not result.better and result.ratio == pytest.approx(1.0) and result.p_value == 1.0


def test_a_consistent_improvement_on_every_origin_is_significant() -> None:
    champion = [10.0, 50.0, 200.0, 30.0, 15.0, 12.0, 80.0, 25.0]
    factors = [0.8, 0.82, 0.79, 0.81, 0.8, 0.78, 0.83, 0.8]
    candidate = [v * f for v, f in zip(champion, factors, strict=True)]
    result = diebold_mariano(candidate, champion, lags=1)
    assert result.better and result.p_value < 0.001
    assert result.ratio_low < 0.81 < result.ratio_high < 0.83
    assert result.effect == pytest.approx(1 - result.ratio)


def test_one_lucky_origin_does_not_make_an_improvement() -> None:
    champion = [10.0, 50.0, 200.0, 30.0, 15.0, 12.0, 80.0, 25.0]
    candidate = [11.0, 52.0, 60.0, 31.0, 15.5, 12.5, 82.0, 26.0]  # far better on the peak only
    result = diebold_mariano(candidate, champion, lags=1)
    assert not result.better


def test_too_few_paired_origins_are_refused() -> None:
    with pytest.raises(InvalidInput, match="needs 3"):
        diebold_mariano([1.0, 2.0], [1.5, 2.5], lags=0)
    with pytest.raises(InvalidInput, match="differ in length"):
        diebold_mariano([1.0, 2.0, 3.0], [1.5, 2.5], lags=0)


def test_the_result_is_strict_json() -> None:
    result = diebold_mariano([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], lags=0)  # exactly half everywhere
    assert result.better
    assert all(
        value is None or not isinstance(value, float) or math.isfinite(value)
        for value in result.to_dict().values()
    )
