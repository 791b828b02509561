"""What every forecaster (LSTM or baseline) offers; the registry and evaluation see only this."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tractcast.errors import InvalidInput

INTERVAL = 0.8  # lower/upper bound an 80% prediction interval
QUANTILES = ((1.0 - INTERVAL) / 2.0, (1.0 + INTERVAL) / 2.0)  # 10% and 90%
# every central interval a forecast carries; lower/upper stay the 80% one
INTERVALS = (0.5, 0.8, 0.95)

# family -> (module, class); modules are imported on demand so TensorFlow loads only for "lstm"
FAMILIES: dict[str, tuple[str, str]] = {
    "persistence": ("tractcast.models.baselines", "Persistence"),
    "seasonal_naive": ("tractcast.models.baselines", "SeasonalNaive"),
    "moving_average": ("tractcast.models.baselines", "MovingAverage"),
    "lstm": ("tractcast.models.lstm", "LSTMForecaster"),
    "ensemble": ("tractcast.models.ensemble", "EnsembleForecaster"),
}
BASELINE_FAMILIES = ("persistence", "seasonal_naive", "moving_average")


@dataclass(frozen=True)
class Forecast:
    """Daily new cases after the end of a history: arrays of shape (n_tracts, horizon).

    `lower`/`upper` bound the 80% interval; `bands` maps the other central interval levels
    (0.5, 0.95) to their (lower, upper) arrays (empty for a model saved before they existed).
    """

    point: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    bands: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def intervals(self) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """Every central interval, the 80% one included, narrowest first."""
        every = {**self.bands, INTERVAL: (self.lower, self.upper)}
        return {level: every[level] for level in sorted(every)}

    def take(self, index: Any) -> Forecast:
        """The same forecast restricted to `index` (rows, columns or both) of every array."""
        return Forecast(
            self.point[index],
            self.lower[index],
            self.upper[index],
            {level: (lo[index], hi[index]) for level, (lo, hi) in self.bands.items()},
        )


def stack_forecasts(forecasts: list[Forecast]) -> Forecast:
    """Forecasts of several origins stacked row-wise; bands kept where every one has them."""
    levels = set.intersection(*(set(f.bands) for f in forecasts)) if forecasts else set()
    return Forecast(
        point=np.concatenate([f.point for f in forecasts], axis=0),
        lower=np.concatenate([f.lower for f in forecasts], axis=0),
        upper=np.concatenate([f.upper for f in forecasts], axis=0),
        bands={
            level: (
                np.concatenate([f.bands[level][0] for f in forecasts], axis=0),
                np.concatenate([f.bands[level][1] for f in forecasts], axis=0),
            )
            for level in sorted(levels)
        },
    )


def central_quantiles(level: float) -> tuple[float, float]:
    """The quantile levels that bound a central interval: 0.8 -> (0.1, 0.9)."""
    return (1.0 - level) / 2.0, (1.0 + level) / 2.0


class Forecaster(Protocol):
    family: str  # "lstm", "persistence", "seasonal_naive", "moving_average"
    horizon: int

    @property
    def min_days(self) -> int:
        """The shortest history `fit` accepts."""

    def fit(self, history: np.ndarray) -> None:
        """Learn from daily new cases, shape (n_tracts, n_days), oldest day first."""

    def predict(self, history: np.ndarray, tracts: np.ndarray | None = None) -> Forecast:
        """Forecast the `horizon` days after the last day of each tract's history.

        With `tracts` (row indices), only those rows are forecast, in that order, each exactly
        as in a forecast of every tract: what a model reads across tracts still spans them all.
        """

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
    point: np.ndarray,
    low_q: np.ndarray,
    high_q: np.ndarray,
    bands: dict[float, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Forecast:
    """Forecast whose bounds shift the point by per-horizon log1p residual quantiles.

    `low_q`/`high_q` give the 80% interval, `bands` the other levels' (low, high) shifts.
    """
    point = np.clip(point, 0.0, None)
    log_point = np.log1p(point)

    def bounds(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the interval always contains the point, even if the residuals were one-sided
        lower = np.expm1(log_point + np.minimum(low, 0.0))
        upper = np.expm1(log_point + np.maximum(high, 0.0))
        return np.clip(lower, 0.0, point), np.maximum(upper, point)

    lower, upper = bounds(low_q, high_q)
    extra = {level: bounds(*shifts) for level, shifts in (bands or {}).items()}
    return Forecast(point=point, lower=lower, upper=upper, bands=extra)


def scaled_interval_factors(
    median: np.ndarray,
    below: np.ndarray,
    above: np.ndarray,
    targets: np.ndarray,
    level: float,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per horizon, the factor on the gaps below/above the median that covers `level` of targets.

    Conformalised quantile regression with a scaled score: a target's score is how many gaps
    it lies from the median, so each tract keeps its own width and every level is calibrated
    on the same held-out (n, horizon) targets; wider levels get larger factors, never crossing.
    With `weights` (n,), each row's scores count by its weight (recent rows more).
    """
    tiny = 1e-6
    score = np.maximum(
        (median - targets) / np.maximum(below, tiny), (targets - median) / np.maximum(above, tiny)
    )
    score = np.maximum(score, 0.0)
    if weights is None:
        return np.quantile(score, level, axis=0).astype(float)
    order = np.argsort(score, axis=0, kind="stable")
    ranked = np.take_along_axis(score, order, axis=0)
    cumulative = np.cumsum(weights[order], axis=0)
    # the smallest score whose weighted share of rows at or below it reaches `level`
    position = np.argmax(cumulative >= level * cumulative[-1:], axis=0)
    return np.take_along_axis(ranked, position[None], axis=0)[0].astype(float)


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


# fitted forecasters by (family, hyperparameters, history, warm start): fitting is deterministic,
# so a backtest, an ensemble's members and the final fits share one fit per history. The warm
# start is part of the key, so a fit is the same whichever context asks for it first.
FitKey = tuple[str, str, str, Any]
_FITTED: OrderedDict[FitKey, Forecaster] = OrderedDict()
FIT_CACHE_SIZE = 256  # a 12-origin backtest of five candidates holds ~80 fits


def history_digest(history: np.ndarray) -> str:
    """A digest of a history's shape and values: the same history, the same digest."""
    array = np.ascontiguousarray(history, dtype=float)
    digest = hashlib.blake2b(array.data, digest_size=16)  # no copy into bytes
    digest.update(repr(array.shape).encode())
    return digest.hexdigest()


def clear_fits() -> None:
    """Forget every shared fit (what a fresh process starts with)."""
    _FITTED.clear()


def fit_shared(
    prototype: Forecaster, history: np.ndarray, warm: Forecaster | None = None
) -> Forecaster:
    """A fresh copy of the prototype fitted on `history`, or the same fit made earlier.

    `warm`, a fit (made here) on an earlier part of the same history, is where a model that can
    (the LSTM, the ensemble's LSTM) starts training from; it saw no day `history` does not hold.
    The returned forecaster may be shared: callers predict with it and never refit or change it.
    """
    warm_key = getattr(warm, "fit_key", None) if hasattr(prototype, "warm_start") else None
    key: FitKey = (
        prototype.family,
        json.dumps(prototype.params(), sort_keys=True, default=str),
        history_digest(history),
        warm_key,
    )
    if key in _FITTED:
        _FITTED.move_to_end(key)
        return _FITTED[key]
    forecaster = clone_forecaster(prototype)
    if warm_key is not None:
        forecaster.warm_start(warm)  # type: ignore[attr-defined]
    forecaster.fit(history)
    forecaster.fit_key = key  # type: ignore[attr-defined]
    _FITTED[key] = forecaster
    while len(_FITTED) > FIT_CACHE_SIZE:
        _FITTED.popitem(last=False)
    return forecaster


def forecaster_from_params(family: str, params: dict[str, Any], **changes: Any) -> Forecaster:
    """A new, unfitted forecaster from a manifest's hyperparameters.

    Names the family's constructor does not take (written by an older release, or meant for
    another family) are left out, so an older champion can still be refitted for comparison;
    a name a manifest lacks because it did not exist yet takes the family's `legacy_params`
    value, which reproduces that release (empty `params` mean the current defaults).
    """
    cls = _forecaster_class(family)
    accepted = inspect.signature(cls).parameters
    legacy = getattr(cls, "legacy_params", {}) if params else {}
    merged = {**legacy, **params, **changes}
    return make_forecaster(family, **{k: v for k, v in merged.items() if k in accepted})
