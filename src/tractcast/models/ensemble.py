"""An ensemble candidate: per horizon, a weighted combination of the LSTM and the baselines.

Fitting fits every member on the history (a fit shared with the members' own candidates when the
history is the same), then forecasts from each daily origin of the newest `calibration_days`
(the days the LSTM holds out of its training) and picks, for each horizon (and with `by_weekday`
for each weekday of the forecast day too), the weights on a grid over the simplex with the
lowest MAE there. On many tracts the calibration forecasts cover evenly spaced tracts only
(`calibration_tracts`); the members are still fitted on every tract. Weights of 1 on one
member are on the grid, so at each horizon the ensemble can also simply choose a family.
Quantiles are combined with the same weights (quantile averaging), and a scaled conformal step
on the same origins then calibrates each interval level per horizon. Everything is fitted on the
history it is given, so within a backtest the weights come from days before the origin only.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from tractcast.errors import InvalidInput
from tractcast.models.base import (
    BASELINE_FAMILIES,
    INTERVAL,
    INTERVALS,
    Forecast,
    Forecaster,
    check_history,
    fit_shared,
    forecaster_from_params,
    load_forecaster,
    scaled_interval_factors,
    stack_forecasts,
)

STATE_FILE = "ensemble.json"
MEMBERS_DIR = "members"
DEFAULT_MEMBERS = ("lstm", *BASELINE_FAMILIES)
# Calibration rows (origins x tracts) the members forecast and the weights and interval scales
# are fitted on, at most: 1,379 tracts' worth of 29 origins. Every row costs each of the 286
# weight combinations (10,000 tracts' 290,000 rows took about 20 s per fit) and a forecast from
# each member (the LSTM's over 10,000 tracts at 29 origins about 35 s per fit); the weights of
# 7 weekdays x 14 horizons and the scales of 3 levels x 14 horizons need far fewer.
CALIBRATION_ROWS = 40_000


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """Every weight vector of `n_members` non-negative multiples of `step` that sum to 1."""
    units = round(1.0 / step)
    rows = [
        combo for combo in itertools.product(range(units + 1), repeat=n_members)
        if sum(combo) == units
    ]  # fmt: skip
    return np.asarray(rows, dtype=float) / units


def best_weights(
    points: np.ndarray, actual: np.ndarray, grid: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """Per group and horizon, the grid row whose weighted points have the lowest MAE.

    `points` is (members, rows, horizon), `actual` (rows, horizon); `groups` (rows, horizon)
    names each point's group (the weekday of its day), 0..6; without it every point is in every
    group. Returns (7, horizon, members); the first best row wins a tie, and a group without
    points takes the weights fitted on all of them.

    Grid rows are scored one at a time, in a fixed order of summation: memory stays at one
    (rows, horizon) array (all 286 rows at once took 9 GB on 10,000 tracts), and a row's score
    does not depend on the others.
    """
    n_rows, horizon = actual.shape
    pooled_mae = np.empty((len(grid), horizon))
    group_mae = np.empty((len(grid), 7 * horizon))
    cells = counts = None
    if groups is not None:  # cell of each point: group * horizon + h
        cells = (groups * horizon + np.arange(horizon)[None, :]).ravel()
        counts = np.bincount(cells, minlength=7 * horizon)
    for g, weights_of_row in enumerate(grid):
        combined = weights_of_row[0] * points[0]
        for member in range(1, points.shape[0]):
            combined += weights_of_row[member] * points[member]
        errors = np.abs(combined - actual)
        pooled_mae[g] = errors.sum(axis=0) / n_rows
        if cells is not None:
            group_mae[g] = np.bincount(cells, weights=errors.ravel(), minlength=7 * horizon)
    pooled = grid[np.argmin(pooled_mae, axis=0)]  # (horizon, members)
    weights = np.repeat(pooled[None], 7, axis=0)
    if counts is None:
        return weights
    for cell in np.flatnonzero(counts):
        weights[cell // horizon, cell % horizon] = grid[np.argmin(group_mae[:, cell])]
    return weights


def calibration_tracts(n_tracts: int, n_origins: int, limit: int | None = None) -> np.ndarray:
    """The tracts calibrated on at every origin: all of them, or evenly spaced ones.

    Past `limit` rows (origins x tracts; CALIBRATION_ROWS by default), every calibration origin
    keeps the same evenly spaced tracts, first and last included, so the weights still see every
    origin and weekday.
    """
    limit = CALIBRATION_ROWS if limit is None else limit
    tracts = np.arange(n_tracts)
    if n_tracts * n_origins > limit:
        spaced = np.linspace(0, n_tracts - 1, max(1, limit // n_origins)).round()
        tracts = np.unique(spaced.astype(int))
    return tracts


def row_weights(weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(rows, horizon, members) weights of each point, from (7, horizon, members) by its group."""
    return weights[groups, np.arange(groups.shape[1])[None, :]]


def combine(forecasts: list[Forecast], weights: np.ndarray) -> Forecast:
    """The members' points and interval bounds averaged with each point's weights (r, h, m)."""

    def mix(arrays: list[np.ndarray]) -> np.ndarray:
        return np.einsum("rhm,mrh->rh", weights, np.stack(arrays))

    levels = set.intersection(*(set(f.bands) for f in forecasts))
    return Forecast(
        point=mix([f.point for f in forecasts]),
        lower=mix([f.lower for f in forecasts]),
        upper=mix([f.upper for f in forecasts]),
        bands={
            level: (mix([f.bands[level][0] for f in forecasts]),
                    mix([f.bands[level][1] for f in forecasts]))
            for level in sorted(levels)
        },
    )  # fmt: skip


class EnsembleForecaster:
    """Per-horizon weighted combination of member forecasters, weights fitted on recent origins."""

    family = "ensemble"

    def __init__(
        self,
        horizon: int = 14,
        members: dict[str, dict[str, Any]] | None = None,
        calibration_days: int = 42,
        step: float = 0.1,
        first_weekday: int = 0,
        by_weekday: bool = False,
    ) -> None:
        self.horizon = horizon
        # weights per weekday of the forecast day as well (off by default: on Italy's 12
        # origins it traded a better horizon 6 for a worse horizon 1, baselines only)
        self.by_weekday = by_weekday
        self.calibration_days = calibration_days
        self.step = step
        self._first_weekday = first_weekday
        chosen = members or {family: {} for family in DEFAULT_MEMBERS}
        self.members: dict[str, dict[str, Any]] = {
            family: self.member_params(family, params) for family, params in chosen.items()
        }
        self.fitted: dict[str, Forecaster] = {}
        self.warm_members: dict[str, Forecaster] = {}  # an earlier fit's members, to start from
        self.weights: np.ndarray | None = None  # (weekday of the day, horizon, members)
        self.scales: dict[float, np.ndarray] = {}

    @property
    def first_weekday(self) -> int:
        """Weekday (0 = Monday) of column 0 of every history; members that read it follow it."""
        return self._first_weekday

    @first_weekday.setter
    def first_weekday(self, weekday: int) -> None:
        self._first_weekday = weekday
        for member in self.fitted.values():
            if hasattr(member, "first_weekday"):
                member.first_weekday = weekday

    def member_params(self, family: str, params: dict[str, Any]) -> dict[str, Any]:
        """A member's hyperparameters with the ensemble's horizon and weekday."""
        prototype = forecaster_from_params(
            family, params, horizon=self.horizon, first_weekday=self.first_weekday
        )
        return prototype.params()

    def prototypes(self) -> dict[str, Forecaster]:
        return {
            family: forecaster_from_params(family, params)
            for family, params in self.members.items()
        }

    @property
    def min_days(self) -> int:
        """Enough for every member to fit before the first calibration origin."""
        deepest = max(p.min_days for p in self.prototypes().values())
        return deepest + self.calibration_days

    def params(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "members": self.members,
            "calibration_days": self.calibration_days,
            "step": self.step,
            "first_weekday": self.first_weekday,
            "by_weekday": self.by_weekday,
        }

    def warm_start(self, other: Any) -> None:
        """Start each member's next fit from another fitted ensemble's member, where it can."""
        self.warm_members = dict(getattr(other, "fitted", {}))

    def calibration_origins(self, n_days: int) -> list[int]:
        """Every day of the newest `calibration_days` with `horizon` observed days after it."""
        return list(range(n_days - self.calibration_days, n_days - self.horizon + 1))

    def fit(self, history: np.ndarray) -> None:
        history = check_history(history, self.min_days)
        self.fitted = {
            family: fit_shared(prototype, history, warm=self.warm_members.get(family))
            for family, prototype in self.prototypes().items()
        }
        origins = self.calibration_origins(history.shape[1])
        tracts = calibration_tracts(history.shape[0], len(origins))
        # rows are origin-major: origin k's forecasts of `tracts` are rows k * len(tracts) on
        per_member = [
            stack_forecasts([member.predict(history[:, :t], tracts) for t in origins])
            for member in self.fitted.values()
        ]
        actual = np.concatenate([history[tracts, t : t + self.horizon] for t in origins], axis=0)
        points = np.stack([forecast.point for forecast in per_member])
        groups = np.concatenate(
            [np.repeat(self.weekdays(t)[None], len(tracts), 0) for t in origins]
        )
        grid = simplex_grid(len(per_member), self.step)
        self.weights = best_weights(points, actual, grid, groups if self.by_weekday else None)
        mixed = combine(per_member, row_weights(self.weights, groups))
        self.scales = {
            level: scaled_interval_factors(
                mixed.point, mixed.point - lower, upper - mixed.point, actual, level
            )
            for level, (lower, upper) in mixed.intervals().items()
        }

    def predict(self, history: np.ndarray, tracts: np.ndarray | None = None) -> Forecast:
        if self.weights is None or not self.fitted:
            raise RuntimeError("ensemble forecaster must be fitted before predicting")
        history = check_history(history, 1)
        forecasts = [member.predict(history, tracts) for member in self.fitted.values()]
        n_rows = forecasts[0].point.shape[0]
        groups = np.repeat(self.weekdays(history.shape[1])[None], n_rows, axis=0)
        mixed = combine(forecasts, row_weights(self.weights, groups))
        point = np.clip(mixed.point, 0.0, None)
        bands = {
            level: (
                np.clip(point - self.scales[level] * (mixed.point - lower), 0.0, point),
                np.maximum(point + self.scales[level] * (upper - mixed.point), point),
            )
            for level, (lower, upper) in mixed.intervals().items()
            if level in self.scales
        }
        lower, upper = bands.pop(INTERVAL)
        return Forecast(point=point, lower=lower, upper=upper, bands=bands)

    def weekdays(self, origin: int) -> np.ndarray:
        """The weekday (0 = Monday) of each forecast day from an origin (a column index)."""
        return (self.first_weekday + origin + np.arange(self.horizon)) % 7

    def weights_table(self) -> dict[str, list[float]]:
        """Each member's weight per horizon (1..horizon), the mean over weekdays, for people."""
        if self.weights is None:
            return {}
        return {
            family: [round(float(w), 3) for w in self.weights[:, :, k].mean(axis=0)]
            for k, family in enumerate(self.members)
        }

    def save(self, directory: Path) -> None:
        if self.weights is None:
            raise RuntimeError("ensemble forecaster must be fitted before saving")
        directory = Path(directory)
        for family, member in self.fitted.items():
            member.save(directory / MEMBERS_DIR / family)
        state = {
            "family": self.family,
            "params": self.params(),
            "weights": self.weights.tolist(),
            "weights_by_member": self.weights_table(),
            "scales": {str(level): scale.tolist() for level, scale in self.scales.items()},
            "intervals": list(INTERVALS),
        }
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> EnsembleForecaster:
        """Rebuild a fitted ensemble and its members from what save wrote."""
        directory = Path(directory)
        state = json.loads((directory / STATE_FILE).read_text())
        forecaster = cls(**state["params"])
        forecaster.fitted = {
            family: load_forecaster(directory / MEMBERS_DIR / family, family)
            for family in forecaster.members
        }
        forecaster.weights = np.asarray(state["weights"], dtype=float)
        if forecaster.weights.shape != (7, forecaster.horizon, len(forecaster.members)):
            raise InvalidInput(f"{directory} holds ensemble weights of another shape")
        forecaster.scales = {
            float(level): np.asarray(scale, dtype=float) for level, scale in state["scales"].items()
        }
        return forecaster
