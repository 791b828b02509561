"""Simple baseline forecasters: persistence, weekly seasonal naive and moving average."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tractcast.models.base import (
    INTERVAL,
    INTERVALS,
    Forecast,
    central_quantiles,
    check_history,
    interval_from_log_quantiles,
)

PARAMS_FILE = "params.json"

PointRule = Callable[[np.ndarray, int], np.ndarray]


def persistence_point(history: np.ndarray, horizon: int) -> np.ndarray:
    """The last day's value, repeated over the horizon."""
    return np.repeat(history[:, -1:], horizon, axis=1)


def seasonal_naive_point(history: np.ndarray, horizon: int, period: int = 7) -> np.ndarray:
    """The value of the same day in the last observed period, repeated period after period."""
    last_period = history[:, -period:]
    return last_period[:, np.arange(horizon) % period]


def moving_average_point(history: np.ndarray, horizon: int, window: int = 7) -> np.ndarray:
    """The mean of the last `window` days, repeated over the horizon."""
    return np.repeat(history[:, -window:].mean(axis=1, keepdims=True), horizon, axis=1)


def log_residual_quantiles(
    history: np.ndarray,
    rule: PointRule,
    horizon: int,
    min_days: int,
    origins: int,
    level: float = INTERVAL,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-horizon quantiles of log1p(actual) - log1p(forecast) bounding a central `level`."""
    bands = log_residual_bands(history, rule, horizon, min_days, origins, (level,))
    return bands[level]


def log_residual_bands(
    history: np.ndarray,
    rule: PointRule,
    horizon: int,
    min_days: int,
    origins: int,
    levels: tuple[float, ...] = INTERVALS,
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """For each central level, per-horizon log1p residual quantiles over the recent origins."""
    last = history.shape[1] - horizon
    first = max(min_days, last - origins + 1)
    if last < first:
        return {level: (np.zeros(horizon), np.zeros(horizon)) for level in levels}
    residuals = [
        np.log1p(history[:, t : t + horizon])
        - np.log1p(np.clip(rule(history[:, :t], horizon), 0.0, None))
        for t in range(first, last + 1)
    ]
    stacked = np.concatenate(residuals, axis=0)
    # one partition for every level's bounds: the same values as one call per level, a third of
    # the time (on 10,000 tracts x 90 origins the partitions were most of a baseline's fit)
    bounds = np.quantile(stacked, [q for level in levels for q in central_quantiles(level)], axis=0)
    return {level: (bounds[2 * k], bounds[2 * k + 1]) for k, level in enumerate(levels)}


class ResidualIntervalBaseline:
    """A point rule plus an 80% interval calibrated on its own recent errors."""

    family: ClassVar[str] = ""
    min_days: ClassVar[int] = 1

    def __init__(self, horizon: int = 14, calibration_days: int = 90) -> None:
        self.horizon = horizon
        self.calibration_days = calibration_days
        self.low_q: np.ndarray | None = None
        self.high_q: np.ndarray | None = None
        self.bands: dict[float, tuple[np.ndarray, np.ndarray]] = {}  # levels other than 80%

    def point(self, history: np.ndarray, horizon: int) -> np.ndarray:
        """The point forecast rule of this baseline."""
        raise NotImplementedError

    def fit(self, history: np.ndarray) -> None:
        history = check_history(history, self.min_days)
        bands = log_residual_bands(
            history, self.point, self.horizon, self.min_days, self.calibration_days
        )
        self.low_q, self.high_q = bands.pop(INTERVAL)
        self.bands = bands

    def predict(self, history: np.ndarray, tracts: np.ndarray | None = None) -> Forecast:
        if self.low_q is None or self.high_q is None:
            raise RuntimeError(f"{self.family} forecaster must be fitted before predicting")
        history = check_history(history, self.min_days)
        if tracts is not None:  # each tract's forecast reads its own row only
            history = history[tracts]
        return interval_from_log_quantiles(
            self.point(history, self.horizon), self.low_q, self.high_q, self.bands
        )

    def params(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "calibration_days": self.calibration_days}

    def save(self, directory: Path) -> None:
        if self.low_q is None or self.high_q is None:
            raise RuntimeError(f"{self.family} forecaster must be fitted before saving")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "family": self.family,
            "params": self.params(),
            "low_q": self.low_q.tolist(),
            "high_q": self.high_q.tolist(),
            "bands": {
                str(level): [lo.tolist(), hi.tolist()] for level, (lo, hi) in self.bands.items()
            },
        }
        (directory / PARAMS_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> ResidualIntervalBaseline:
        """Rebuild a fitted baseline from the params.json written by save."""
        state = json.loads((Path(directory) / PARAMS_FILE).read_text())
        forecaster = cls(**state["params"])
        forecaster.low_q = np.asarray(state["low_q"], dtype=float)
        forecaster.high_q = np.asarray(state["high_q"], dtype=float)
        # a version saved before the 50%/95% intervals existed has no bands: 80% only
        forecaster.bands = {
            float(level): (np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
            for level, (lo, hi) in state.get("bands", {}).items()
        }
        return forecaster


class Persistence(ResidualIntervalBaseline):
    """Tomorrow and every later day look like today."""

    family = "persistence"
    min_days = 1

    def point(self, history: np.ndarray, horizon: int) -> np.ndarray:
        return persistence_point(history, horizon)


class SeasonalNaive(ResidualIntervalBaseline):
    """Each day looks like the same weekday last week."""

    family = "seasonal_naive"
    min_days = 7

    def point(self, history: np.ndarray, horizon: int) -> np.ndarray:
        return seasonal_naive_point(history, horizon, period=7)


class MovingAverage(ResidualIntervalBaseline):
    """Every day looks like the mean of the last week."""

    family = "moving_average"
    min_days = 7

    def point(self, history: np.ndarray, horizon: int) -> np.ndarray:
        return moving_average_point(history, horizon, window=7)
