"""What every forecaster (LSTM or baseline) offers; the registry and evaluation see only this."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tractcast.errors import InvalidInput

INTERVAL = 0.8  # lower/upper bound an 80% prediction interval
QUANTILES = ((1.0 - INTERVAL) / 2.0, (1.0 + INTERVAL) / 2.0)  # 10% and 90%

# family -> (module, class); modules are imported on demand so TensorFlow loads only for "lstm"
FAMILIES: dict[str, tuple[str, str]] = {
    "persistence": ("tractcast.models.baselines", "Persistence"),
    "seasonal_naive": ("tractcast.models.baselines", "SeasonalNaive"),
    "moving_average": ("tractcast.models.baselines", "MovingAverage"),
    "lstm": ("tractcast.models.lstm", "LSTMForecaster"),
}
BASELINE_FAMILIES = ("persistence", "seasonal_naive", "moving_average")


@dataclass(frozen=True)
class Forecast:
    """Daily new cases after the end of a history: arrays of shape (n_tracts, horizon)."""

    point: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


class Forecaster(Protocol):
    family: str  # "lstm", "persistence", "seasonal_naive", "moving_average"
    horizon: int

    @property
    def min_days(self) -> int:
        """The shortest history `fit` accepts."""

    def fit(self, history: np.ndarray) -> None:
        """Learn from daily new cases, shape (n_tracts, n_days), oldest day first."""

    def predict(self, history: np.ndarray) -> Forecast:
        """Forecast the `horizon` days after the last day of each tract's history."""

    def params(self) -> dict[str, Any]:
        """Hyperparameters, written to the version manifest."""

    def save(self, directory: Path) -> None:
        """Write everything needed to predict again (model.h5 for the LSTM) into directory."""


def check_history(history: np.ndarray, min_days: int) -> np.ndarray:
    """Return history as a float (n_tracts, n_days) array, or raise InvalidInput saying why not."""
    array = np.asarray(history, dtype=float)
    if array.ndim != 2:
        raise InvalidInput(f"history must be 2-D (n_tracts, n_days), got shape {array.shape}")
    if array.shape[0] == 0:
        raise InvalidInput("history has no tracts")
    if array.shape[1] < min_days:
        raise InvalidInput(f"history has {array.shape[1]} days, at least {min_days} are needed")
    if not np.all(np.isfinite(array)):
        raise InvalidInput("history contains NaN or infinite values; clean it first")
    return array


def interval_from_log_quantiles(
    point: np.ndarray, low_q: np.ndarray, high_q: np.ndarray
) -> Forecast:
    """Forecast whose bounds shift the point by per-horizon log1p residual quantiles."""
    point = np.clip(point, 0.0, None)
    log_point = np.log1p(point)
    # the interval always contains the point, even if the calibration residuals were one-sided
    lower = np.expm1(log_point + np.minimum(low_q, 0.0))
    upper = np.expm1(log_point + np.maximum(high_q, 0.0))
    return Forecast(point=point, lower=np.clip(lower, 0.0, point), upper=np.maximum(upper, point))


def _forecaster_class(family: str) -> Any:
    """The class implementing a family, importing its module on demand."""
    if family not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise InvalidInput(f"unknown forecaster family {family!r}; known: {known}")
    module_name, class_name = FAMILIES[family]
    return getattr(importlib.import_module(module_name), class_name)


def load_forecaster(directory: Path, family: str) -> Forecaster:
    """Load a forecaster saved by `save`; TensorFlow is imported only for the LSTM."""
    forecaster: Forecaster = _forecaster_class(family).load(Path(directory))
    return forecaster


def make_forecaster(family: str, horizon: int = 14, **params: Any) -> Forecaster:
    """A new, unfitted forecaster of one family."""
    forecaster: Forecaster = _forecaster_class(family)(horizon=horizon, **params)
    return forecaster


def clone_forecaster(forecaster: Forecaster, **changes: Any) -> Forecaster:
    """A new, unfitted forecaster of the same family and hyperparameters (some changed)."""
    clone: Forecaster = type(forecaster)(**{**forecaster.params(), **changes})
    return clone


def forecaster_from_params(family: str, params: dict[str, Any], **changes: Any) -> Forecaster:
    """A new, unfitted forecaster from a manifest's hyperparameters.

    Names the family's constructor does not take (written by an older release, or meant for
    another family) are left out, so an older champion can still be refitted for comparison.
    """
    accepted = inspect.signature(_forecaster_class(family)).parameters
    merged = {**params, **changes}
    return make_forecaster(family, **{k: v for k, v in merged.items() if k in accepted})
