"""Repair of reporting artefacts in the canonical series, each tract's total conserved.

Rule, per tract, on the cumulative series:
1. a drop that recovers (to within `1 - min_recovery` of its depth) within `max_dip_days` is a
   transient glitch: the dip days are lifted to the level before it (no cases invented: the
   recovery day already counts them);
2. any remaining drop is a correction of earlier over-reporting: it is offset against the
   preceding days, latest first, which makes the cumulative its suffix minimum;
3. a frozen period (at least `min_frozen_days` days without a case where the tract's rate makes
   that implausible) followed by a dump (one day holding about the frozen days' cases) is a
   reporting delay: the dump is spread back over the frozen days along the rates around it,
   and those days are flagged imputed.
Afterwards new_cases >= 0, total_cases == cumsum(new_cases) and the last total is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.series import (
    daily_from_cumulative,
    series_frame,
    series_matrix,
    spread_total,
)

FROZEN_LIST_CAP = 100


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


def zero_runs(row: np.ndarray, min_days: int) -> list[tuple[int, int]]:
    """(start, stop) of every run of at least min_days zeros (stop exclusive)."""
    zero = np.concatenate(([0], (row == 0).astype(np.int8), [0]))
    edges = np.diff(zero)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = stops - starts >= min_days
    return list(zip(starts[keep], stops[keep], strict=True))


def window_mean(row: np.ndarray, start: int, stop: int) -> float:
    """Mean of row[start:stop] clipped to the row; NaN when fewer than 7 days are there."""
    part = row[max(start, 0) : max(stop, 0)]
    return float(part.mean()) if part.size >= 7 else float("nan")


def spread_dumps(
    new: np.ndarray,
    *,
    min_frozen_days: int = 3,
    dump_factor: float = 3.0,
    window: int = 28,
    min_expected: float = 6.0,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, int]], list[dict[str, int]]]:
    """Spread each dump back over the frozen days before it; conserve every total.

    A run of zero days is frozen when the tract's rate around it (mean daily count over
    `window` days) expects at least `min_expected` cases in it (so zeros are implausible:
    p < 0.3 % for Poisson counts). The day after it is a dump when it holds at least
    `dump_factor` days' worth and at least half of what the frozen days would have held.
    Returns the new daily counts, the cells changed, the dumps spread and the frozen runs left
    as they are (no dump after them).
    """
    repaired = new.copy()
    changed = np.zeros(new.shape, dtype=bool)
    dumps: list[dict[str, int]] = []
    frozen: list[dict[str, int]] = []
    for r in range(new.shape[0]):
        row = repaired[r]
        for start, stop in zero_runs(row, min_frozen_days):
            days = stop - start
            before = window_mean(row, start - window, start)
            after = window_mean(row, stop + 1, stop + 1 + window)
            rate = before if before > 0 else after
            if not rate > 0 or rate * days < min_expected:
                continue  # zeros are plausible at this rate
            dump = row[stop] if stop < row.size else 0.0
            is_dump = dump >= max(dump_factor * rate, days + 1) and dump >= 0.5 * rate * (days + 1)
            if not is_dump:
                frozen.append({"row": r, "start": int(start), "days": int(days)})
                continue
            rates = [x if x > 0 else rate for x in (before, after)]
            row[start : stop + 1] = spread_total(dump, np.linspace(rates[0], rates[1], days + 1))
            changed[r, start : stop + 1] = True
            dumps.append({"row": r, "start": int(start), "days": int(days), "cases": int(dump)})
    return repaired, changed, dumps, frozen


def describe_runs(
    runs: list[dict[str, int]], tract_ids: list[str], dates: pd.DatetimeIndex
) -> list[dict[str, Any]]:
    """Runs as {tract_id, start, end, days[, cases]} with ISO dates, at most FROZEN_LIST_CAP."""
    described = []
    for run in runs[:FROZEN_LIST_CAP]:
        entry: dict[str, Any] = {
            "tract_id": tract_ids[run["row"]],
            "start": f"{dates[run['start']]:%Y-%m-%d}",
            "end": f"{dates[run['start'] + run['days'] - 1]:%Y-%m-%d}",
            "days": run["days"],
        }
        if "cases" in run:
            entry["cases"] = run["cases"]
        described.append(entry)
    return described


def clean_series(
    series: pd.DataFrame,
    *,
    max_dip_days: int = 14,
    min_recovery: float = 0.9,
    min_frozen_days: int = 3,
    date_col: str = "date",
    tract_col: str = "tract_id",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Repair negative daily counts and frozen-then-dump periods, conserving each tract's total;
    return the series and a report of what changed."""
    if series.empty:
        return series.copy(), {"days_changed": 0, "tracts_changed": 0, "negative_days_before": 0}
    tract_ids, dates, total = series_matrix(
        series, "total_cases", date_col=date_col, tract_col=tract_col
    )
    _, _, new = series_matrix(series, "new_cases", date_col=date_col, tract_col=tract_col)
    _, _, imputed = series_matrix(series, "imputed", date_col=date_col, tract_col=tract_col)
    repaired_new, repaired_total, flags, report = clean_matrices(
        tract_ids,
        dates,
        new,
        total,
        imputed.astype(bool),
        max_dip_days=max_dip_days,
        min_recovery=min_recovery,
        min_frozen_days=min_frozen_days,
    )
    return series_frame(tract_ids, dates, repaired_new, repaired_total, flags), report


def clean_matrices(
    tract_ids: list[str],
    dates: pd.DatetimeIndex,
    new: np.ndarray,
    total: np.ndarray,
    imputed: np.ndarray,
    *,
    max_dip_days: int = 14,
    min_recovery: float = 0.9,
    min_frozen_days: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """clean_series on (n_tracts, n_days) arrays: repaired new, total, imputed flags, report."""
    lifted = lift_transient_dips(total, max_dip_days, min_recovery)
    repaired = offset_corrections(lifted)
    corrected_new = daily_from_cumulative(repaired)
    repaired_new, spread, dumps, frozen = spread_dumps(
        corrected_new, min_frozen_days=min_frozen_days
    )
    repaired_total = np.cumsum(repaired_new, axis=1)
    changed = repaired_new != new
    report = {
        "rule": (
            "lift dips recovering within max_dip_days, offset other drops against earlier days, "
            "spread dumps after frozen periods back over the frozen days"
        ),
        "max_dip_days": max_dip_days,
        "min_recovery": min_recovery,
        "min_frozen_days": min_frozen_days,
        "negative_days_before": int((new < 0).sum()),
        "negative_days_after": int((repaired_new < 0).sum()),
        "days_lifted": int((lifted != total).sum()),
        "days_offset": int((repaired != lifted).sum()),
        "dumps_spread": len(dumps),
        "days_spread": int(spread.sum()),
        "cases_spread": int(sum(d["cases"] for d in dumps)),
        "dumps": describe_runs(dumps, tract_ids, dates),
        "frozen_without_dump": len(frozen),
        "frozen_periods": describe_runs(
            sorted(frozen, key=lambda run: run["days"], reverse=True), tract_ids, dates
        ),
        "days_changed": int(changed.sum()),
        "tracts_changed": int(changed.any(axis=1).sum()),
        "cases_moved": float(np.abs(repaired_new - new).sum() / 2),
    }
    return repaired_new, repaired_total, imputed | spread, report
