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
    return scores


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
    reference: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics over all horizons, and again for each horizon (1-based) in `per_horizon`.

    With a reference point forecast (the weekly seasonal naive), each horizon also gets
    `relative_mae`, and the overall `relative_mae` is their mean over the horizons.
    """
    actual = np.asarray(actual, dtype=float)
    if actual.ndim != 2:
        raise InvalidInput(f"actual must be 2-D (n_tracts, horizon), got shape {actual.shape}")
    mask = None if mask is None else np.asarray(mask, dtype=bool)
    scores: dict[str, Any] = score_points(actual, forecast, mask)
    per_horizon = []
    for h in range(actual.shape[1]):
        day_mask = None if mask is None else mask[:, h]
        day = score_points(
            actual[:, h],
            Forecast(forecast.point[:, h], forecast.lower[:, h], forecast.upper[:, h]),
            day_mask,
        )
        if reference is not None:
            day["relative_mae"] = relative_mae(
                actual[:, h], forecast.point[:, h], reference[:, h], day_mask
            )
        per_horizon.append({"horizon": h + 1, **day})
    if reference is not None:
        relative = [day["relative_mae"] for day in per_horizon]
        finite = [value for value in relative if np.isfinite(value)]
        scores["relative_mae"] = float(np.mean(finite)) if finite else float("nan")
    scores["per_horizon"] = per_horizon
    return scores
