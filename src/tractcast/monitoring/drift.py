"""Input drift: the recent days' daily new cases against the training window's, by PSI and KS.

The input is log1p of every tract's observed daily new cases over the last `REFERENCE_DAYS`
days. At training time a small reference (evenly spaced quantiles of those values) is saved in
the version's manifest; later, the same days of the newest data are compared with it.
PSI bins are the reference's deciles (ties merged, so a mass of zero days stays one bin).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tractcast.errors import InvalidInput

FEATURE = "log1p_new_cases"
REFERENCE_DAYS = 28
REFERENCE_POINTS = 101  # quantiles kept in the manifest: 0%, 1%, ..., 100%
PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite


@dataclass(frozen=True)
class DriftCheck:
    """One comparison of recent inputs with a version's training window."""

    psi: float
    ks: float
    threshold: float
    reference_end: str | None
    recent_end: str | None
    values: int  # recent values compared

    @property
    def drifted(self) -> bool:
        return self.psi > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifted": self.drifted}


def recent_inputs(
    history: np.ndarray, observed: np.ndarray | None = None, days: int = REFERENCE_DAYS
) -> np.ndarray:
    """log1p of the observed daily new cases of the last `days` days, every tract, flattened."""
    window = np.asarray(history, dtype=float)[:, -days:]
    keep = np.isfinite(window)
    if observed is not None:
        keep &= np.asarray(observed, dtype=bool)[:, -days:]
    return np.log1p(np.clip(window[keep], 0.0, None))


def reference_sample(
    history: np.ndarray,
    observed: np.ndarray | None = None,
    dates: pd.DatetimeIndex | None = None,
    days: int = REFERENCE_DAYS,
) -> dict[str, Any]:
    """What a version keeps of its training window's inputs (JSON, a few kilobytes)."""
    values = recent_inputs(history, observed, days)
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, REFERENCE_POINTS)) if values.size else []
    return {
        "feature": FEATURE,
        "days": days,
        "end": None if dates is None or len(dates) == 0 else dates[-1].date().isoformat(),
        "values": int(values.size),
        "quantiles": [round(float(q), 4) for q in quantiles],
    }


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `recent` against `reference` over the reference's deciles."""
    reference, recent = _non_empty(reference, "reference"), _non_empty(recent, "recent")
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    expected = _shares(reference, edges)
    actual = _shares(recent, edges)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(reference: np.ndarray, recent: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two CDFs."""
    reference = np.sort(_non_empty(reference, "reference"))
    recent = np.sort(_non_empty(recent, "recent"))
    points = np.concatenate([reference, recent])
    cdf_reference = np.searchsorted(reference, points, side="right") / reference.size
    cdf_recent = np.searchsorted(recent, points, side="right") / recent.size
    return float(np.max(np.abs(cdf_reference - cdf_recent)))


def check_drift(
    reference: dict[str, Any],
    history: np.ndarray,
    observed: np.ndarray | None,
    dates: pd.DatetimeIndex | None,
    threshold: float,
) -> DriftCheck | None:
    """Recent inputs against a saved reference; None when either side has no values."""
    quantiles = np.asarray(reference.get("quantiles") or [], dtype=float)
    days = int(reference.get("days") or REFERENCE_DAYS)
    recent = recent_inputs(history, observed, days)
    if quantiles.size == 0 or recent.size == 0:
        return None
    return DriftCheck(
        psi=round(psi(quantiles, recent), 4),
        ks=round(ks_statistic(quantiles, recent), 4),
        threshold=threshold,
        reference_end=reference.get("end"),
        recent_end=None if dates is None or len(dates) == 0 else dates[-1].date().isoformat(),
        values=int(recent.size),
    )


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # bins (-inf, e1], (e1, e2], ..., (ek, inf): a value equal to an edge stays below it
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    return np.maximum(counts / values.size, PSI_FLOOR)


def _non_empty(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise InvalidInput(f"the {name} sample has no finite values")
    return array
