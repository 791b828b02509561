"""Basic repair of the canonical series: no negative daily counts, each tract's total conserved.

Rule, per tract, on the cumulative series:
1. a drop that recovers (to within `1 - min_recovery` of its depth) within `max_dip_days` is a
   transient glitch: the dip days are lifted to the level before it (no cases invented: the
   recovery day already counts them);
2. any remaining drop is a correction of earlier over-reporting: it is offset against the
   preceding days, latest first, which makes the cumulative its suffix minimum.
Afterwards new_cases >= 0, total_cases == cumsum(new_cases) and the last total is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.series import daily_from_cumulative, series_frame, series_matrix


def lift_transient_dips(
    total: np.ndarray, max_dip_days: int = 14, min_recovery: float = 0.9
) -> np.ndarray:
    """Raise cumulative dips that mostly recover within max_dip_days to the level before the dip."""
    lifted = total.copy()
    for row in lifted:
        for day in np.flatnonzero(np.diff(row) < 0) + 1:
            level = row[day - 1]
            if row[day] >= level:
                continue
            window = row[day + 1 : day + 1 + max_dip_days]
            threshold = level - (1 - min_recovery) * (level - row[day])
            recovered = np.flatnonzero(window >= threshold)
            if recovered.size:
                row[day : day + 1 + recovered[0]] = level
    return lifted


def offset_corrections(total: np.ndarray) -> np.ndarray:
    """Offset cumulative drops against the preceding days: each day becomes its suffix minimum."""
    return np.minimum.accumulate(total[:, ::-1], axis=1)[:, ::-1]


def clean_series(
    series: pd.DataFrame,
    *,
    max_dip_days: int = 14,
    min_recovery: float = 0.9,
    date_col: str = "date",
    tract_col: str = "tract_id",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Repair negative daily counts, conserving each tract's total; return series and report."""
    if series.empty:
        return series.copy(), {"days_changed": 0, "tracts_changed": 0, "negative_days_before": 0}
    tract_ids, dates, total = series_matrix(
        series, "total_cases", date_col=date_col, tract_col=tract_col
    )
    _, _, new = series_matrix(series, "new_cases", date_col=date_col, tract_col=tract_col)
    _, _, imputed = series_matrix(series, "imputed", date_col=date_col, tract_col=tract_col)
    lifted = lift_transient_dips(total, max_dip_days, min_recovery)
    repaired = offset_corrections(lifted)
    repaired_new = daily_from_cumulative(repaired)
    changed = repaired_new != new
    report = {
        "rule": "lift dips recovering within max_dip_days, offset other drops against earlier days",
        "max_dip_days": max_dip_days,
        "min_recovery": min_recovery,
        "negative_days_before": int((new < 0).sum()),
        "negative_days_after": int((repaired_new < 0).sum()),
        "days_lifted": int((lifted != total).sum()),
        "days_offset": int((repaired != lifted).sum()),
        "days_changed": int(changed.sum()),
        "tracts_changed": int(changed.any(axis=1).sum()),
        "cases_moved": float(np.abs(repaired_new - new).sum() / 2),
    }
    cleaned = series_frame(tract_ids, dates, repaired_new, repaired, imputed.astype(bool))
    return cleaned, report
