"""Is a candidate's improvement real? A Diebold-Mariano test on per-origin loss ratios.

The paired unit is a backtest origin: candidate and champion are scored on the same origins,
tracts, horizons and observed days, and each origin gives one loss difference,
d_k = log(loss_candidate_k / loss_champion_k) (the loss is a mean WIS or MAE over that origin's
tracts and horizons). Working on log ratios keeps an origin on a wave's peak from outweighing
the others. Origins a week apart with a 14-day horizon score overlapping days, so the d_k are
autocorrelated: the variance of their mean is a Newey-West (HAC, Bartlett weights) estimate with
as many lags as an origin's window overlaps later ones. The statistic is referred to Student's t
with n - 1 degrees of freedom (small samples, as Harvey, Leybourne and Newbold advise).

H0: the candidate's mean loss ratio is at least 1 - `min_effect` (no improvement of that size);
the candidate is better when H0 is rejected at `level`, one-sided.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from tractcast.errors import InvalidInput
from tractcast.jsonsafe import json_safe

MIN_ORIGINS = 3  # fewer paired origins leave no degrees of freedom for a variance


@dataclass(frozen=True)
class TestResult:
    """The outcome of one paired test of candidate against champion."""

    better: bool  # H0 rejected: the candidate is better by at least min_effect
    ratio: float  # geometric mean over origins of candidate loss / champion loss
    ratio_low: float  # two-sided `level` interval of that ratio
    ratio_high: float
    p_value: float  # one-sided
    statistic: float
    origins: int
    lags: int
    level: float
    min_effect: float
    loss: str

    @property
    def effect(self) -> float:
        """The relative improvement: 0.1 means the candidate's loss is 10% lower."""
        return 1.0 - self.ratio

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON fields (an infinite statistic, all origins agreeing, becomes None)."""
        return json_safe({**asdict(self), "effect": self.effect})


def newey_west_variance(values: np.ndarray, lags: int) -> float:
    """HAC long-run variance of a series (Bartlett weights), the variance of sqrt(n) x its mean."""
    centred = np.asarray(values, dtype=float) - np.mean(values)
    n = len(centred)
    variance = float(np.dot(centred, centred) / n)
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1.0 - lag / (lags + 1.0)
        variance += 2.0 * weight * float(np.dot(centred[lag:], centred[:-lag]) / n)
    return max(variance, 0.0)


def overlap_lags(origins: list[int], horizon: int) -> int:
    """How many later origins the window of an origin overlaps at most (its HAC lag count)."""
    ordered = sorted(origins)
    return max(
        (sum(1 for later in ordered[k + 1 :] if later < start + horizon) for k, start in
         enumerate(ordered)),
        default=0,
    )  # fmt: skip


def diebold_mariano(
    candidate_loss: list[float],
    champion_loss: list[float],
    *,
    lags: int,
    level: float = 0.95,
    min_effect: float = 0.0,
    loss: str = "wis",
) -> TestResult:
    """Test whether the candidate's per-origin losses are lower than the champion's (paired)."""
    if not 0.5 <= level < 1.0:
        raise InvalidInput(f"the promotion test level must be in [0.5, 1), got {level}")
    if not 0.0 <= min_effect < 1.0:
        raise InvalidInput(f"the minimum effect must be in [0, 1), got {min_effect}")
    if len(candidate_loss) != len(champion_loss):
        raise InvalidInput(
            f"paired losses differ in length: {len(candidate_loss)} vs {len(champion_loss)}"
        )
    mine, theirs = np.asarray(candidate_loss, float), np.asarray(champion_loss, float)
    usable = np.isfinite(mine) & np.isfinite(theirs) & (mine > 0) & (theirs > 0)
    differences = np.log(mine[usable]) - np.log(theirs[usable])
    n = len(differences)
    if n < MIN_ORIGINS:
        raise InvalidInput(f"{n} origins scored both models; the test needs {MIN_ORIGINS}")
    mean = float(np.mean(differences))
    se = math.sqrt(newey_west_variance(differences, lags) / n)
    null = math.log(1.0 - min_effect)  # H0: mean >= null
    if se > 0:
        statistic = (mean - null) / se
        p_value = float(stats.t.cdf(statistic, df=n - 1))
    else:  # every origin says the same: the sign alone decides
        statistic = -math.inf if mean < null else (0.0 if mean == null else math.inf)
        p_value = 0.0 if mean < null else 1.0
    spread = float(stats.t.ppf(0.5 + level / 2.0, df=n - 1)) * se
    return TestResult(
        better=p_value < 1.0 - level,
        ratio=math.exp(mean),
        ratio_low=math.exp(mean - spread),
        ratio_high=math.exp(mean + spread),
        p_value=p_value,
        statistic=statistic,
        origins=n,
        lags=lags,
        level=level,
        min_effect=min_effect,
        loss=loss,
    )
