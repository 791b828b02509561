"""Forecast error metrics; all share one signature: (actual, predicted, mask=None) -> float."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tractcast.errors import InvalidInput
from tractcast.models.base import Forecast

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]


def selected_points(mask: np.ndarray | None, *arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays' values at the points to score: finite in every array and selected by mask."""
    values = [np.asarray(array, dtype=float) for array in arrays]
    shape = values[0].shape
    if any(value.shape != shape for value in values):
        raise InvalidInput(f"arrays to score differ in shape: {[v.shape for v in values]}")
    keep = np.logical_and.reduce([np.isfinite(value) for value in values])
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shape:
            raise InvalidInput(f"mask {mask.shape} and actual {shape} differ in shape")
        keep &= mask
    return [value[keep] for value in values]


def mse(actual: np.ndarray, predicted: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error."""
    a, p = selected_points(mask, actual, predicted)
    return float(np.mean((a - p) ** 2)) if a.size else float("nan")


def mae(actual: np.ndarray, predicted: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error."""
    a, p = selected_points(mask, actual, predicted)
    return float(np.mean(np.abs(a - p))) if a.size else float("nan")


def rmse(actual: np.ndarray, predicted: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mse(actual, predicted, mask)))


def mape(actual: np.ndarray, predicted: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute percentage error (as a fraction) over the points whose actual is > 0."""
    a, p = selected_points(mask, actual, predicted)
    positive = a > 0
    if not positive.any():
        return float("nan")
    return float(np.mean(np.abs(a[positive] - p[positive]) / a[positive]))


def wape(actual: np.ndarray, predicted: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Weighted absolute percentage error: sum |error| / sum |actual|."""
    a, p = selected_points(mask, actual, predicted)
    total = np.sum(np.abs(a))
    return float(np.sum(np.abs(a - p)) / total) if total > 0 else float("nan")


def coverage(
    actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Share of actuals that fall inside [lower, upper]."""
    a, lo, hi = selected_points(mask, actual, lower, upper)
    return float(np.mean((a >= lo) & (a <= hi))) if a.size else float("nan")


def interval_score(
    actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float
) -> np.ndarray:
    """Pointwise interval score of a central `level` interval: width plus 2/alpha x each miss."""
    alpha = 1.0 - level
    below = np.clip(lower - actual, 0.0, None)
    above = np.clip(actual - upper, 0.0, None)
    return (upper - lower) + (2.0 / alpha) * (below + above)


def wis_points(actual: np.ndarray, forecast: Forecast) -> np.ndarray:
    """Pointwise weighted interval score: the median's absolute error and every interval's score.

    WIS = (|y - m| / 2 + sum_k alpha_k / 2 x IS_k) / (K + 1/2), the forecast hubs' definition,
    over the K central intervals the forecast carries (the point is the median).
    """
    actual = np.asarray(actual, dtype=float)
    intervals = forecast.intervals()
    total = 0.5 * np.abs(actual - forecast.point)
    for level, (lower, upper) in intervals.items():
        total = total + (1.0 - level) / 2.0 * interval_score(actual, lower, upper, level)
    return total / (len(intervals) + 0.5)


def wis(actual: np.ndarray, forecast: Forecast, mask: np.ndarray | None = None) -> float:
    """Mean weighted interval score over the selected points (same units as MAE)."""
    points = wis_points(actual, forecast)
    (value,) = selected_points(_finite_mask(mask, actual), points)
    return float(np.mean(value)) if value.size else float("nan")


def _finite_mask(mask: np.ndarray | None, actual: np.ndarray) -> np.ndarray:
    """The mask, also leaving out points whose actual is not finite."""
    finite = np.isfinite(np.asarray(actual, dtype=float))
    return finite if mask is None else finite & np.asarray(mask, dtype=bool)


POINT_METRICS: dict[str, Metric] = {
    "mse": mse,
    "mae": mae,
    "rmse": rmse,
    "mape": mape,
    "wape": wape,
}


def score_points(
    actual: np.ndarray, forecast: Forecast, mask: np.ndarray | None = None
) -> dict[str, float]:
    """Every point metric plus interval coverage over the selected points."""
    scores = {name: metric(actual, forecast.point, mask) for name, metric in POINT_METRICS.items()}
    scores["coverage"] = coverage(actual, forecast.lower, forecast.upper, mask)
    for level, (lower, upper) in forecast.bands.items():
        scores[coverage_key(level)] = coverage(actual, lower, upper, mask)
    scores["wis"] = wis(actual, forecast, mask)
    return scores


def coverage_key(level: float) -> str:
    """The name of an interval level's coverage: 0.5 -> coverage_50 (the 80% one is coverage)."""
    return f"coverage_{round(level * 100)}"


def ratio(value: float, reference: float) -> float:
    """value / reference, NaN when the reference is zero or either is not finite."""
    if not (np.isfinite(value) and np.isfinite(reference)) or reference == 0:
        return float("nan")
    return float(value / reference)


def geometric_mean(values: list[float]) -> float:
    """Geometric mean of the finite positive values (NaN if none): the mean ratio over origins."""
    kept = np.asarray([v for v in values if np.isfinite(v) and v > 0], dtype=float)
    return float(np.exp(np.mean(np.log(kept)))) if kept.size else float("nan")


def relative_mae(
    actual: np.ndarray,
    predicted: np.ndarray,
    reference: np.ndarray,
    mask: np.ndarray | None = None,
) -> float:
    """MAE of `predicted` divided by the MAE of a reference forecast on the same points."""
    reference_mae = mae(actual, reference, mask)
    if not np.isfinite(reference_mae) or reference_mae == 0:
        return float("nan")
    return mae(actual, predicted, mask) / reference_mae


def score_forecast(
    actual: np.ndarray,
    forecast: Forecast,
    mask: np.ndarray | None = None,
    reference: Forecast | np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics over all horizons, and again for each horizon (1-based) in `per_horizon`.

    With a reference forecast (the weekly seasonal naive), each horizon also gets
    `relative_mae` (and `relative_wis` when the reference has intervals), and the overall
    values are their means over the horizons.
    """
    if isinstance(reference, np.ndarray):
        reference = Forecast(reference, reference, reference)
        with_intervals = False
    else:
        with_intervals = reference is not None
    actual = np.asarray(actual, dtype=float)
    if actual.ndim != 2:
        raise InvalidInput(f"actual must be 2-D (n_tracts, horizon), got shape {actual.shape}")
    mask = None if mask is None else np.asarray(mask, dtype=bool)
    scores: dict[str, Any] = score_points(actual, forecast, mask)
    per_horizon = []
    for h in range(actual.shape[1]):
        day_mask = None if mask is None else mask[:, h]
        day = score_points(actual[:, h], forecast.take((slice(None), h)), day_mask)
        if reference is not None:
            day["relative_mae"] = relative_mae(
                actual[:, h], forecast.point[:, h], reference.point[:, h], day_mask
            )
            if with_intervals:
                reference_wis = wis(actual[:, h], reference.take((slice(None), h)), day_mask)
                day["relative_wis"] = ratio(day["wis"], reference_wis)
        per_horizon.append({"horizon": h + 1, **day})
    if reference is not None:
        keys = ("relative_mae", "relative_wis") if with_intervals else ("relative_mae",)
        for key in keys:
            finite = [day[key] for day in per_horizon if np.isfinite(day[key])]
            scores[key] = float(np.mean(finite)) if finite else float("nan")
    scores["per_horizon"] = per_horizon
    return scores
