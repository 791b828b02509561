"""The canonical series (one row per tract per day, new and total cases): build, reshape, write."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SERIES_COLUMNS = ("date", "tract_id", "new_cases", "total_cases", "imputed")
SERIES_FILE = "series.parquet"
REPORT_FILE = "report.json"


@dataclass(frozen=True, eq=False)
class IngestResult:
    """The cleaned canonical series, its validation report and the version of the raw data."""

    series: pd.DataFrame
    report: dict[str, Any]
    data_version: str


def observation_matrix(
    observations: pd.DataFrame,
    *,
    date_col: str = "date",
    tract_col: str = "tract_id",
    value_col: str = "value",
) -> tuple[list[str], pd.DatetimeIndex, np.ndarray]:
    """Observed values as a (n_tracts, n_days) array over the full date range, NaN where missing."""
    tract_ids = sorted(str(t) for t in observations[tract_col].unique())
    dates = pd.date_range(observations[date_col].min(), observations[date_col].max(), freq="D")
    rows = positions_in(tract_ids, observations[tract_col])
    cols = dates.get_indexer(observations[date_col])
    matrix = np.full((len(tract_ids), len(dates)), np.nan)
    matrix[rows, cols] = observations[value_col].to_numpy(dtype=float)
    return tract_ids, dates, matrix


TREND_DAYS = 14  # observed days a trend is read from
MAX_EXTRAPOLATION_DAYS = 28  # trailing gaps longer than this stay flat after it


def positions_in(labels: list[str], values: pd.Series) -> np.ndarray:
    """Position of each value in labels (-1 when absent); categoricals by their categories."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        table = np.append(pd.Index(labels).get_indexer(values.cat.categories.astype(str)), -1)
        return table[codes]
    return pd.Index(labels).get_indexer(values)


def nan_runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of NaN in a row (stop exclusive)."""
    missing = np.concatenate(([0], np.isnan(row).astype(np.int8), [0]))
    edges = np.diff(missing)
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def spread_total(total: float, weights: np.ndarray) -> np.ndarray:
    """Split a count over days in proportion to weights; whole counts stay whole and sum to it."""
    weights = np.clip(np.nan_to_num(np.asarray(weights, dtype=float)), 0.0, None)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    exact = total * weights / weights.sum()
    if float(total) != round(total):
        return exact
    whole = np.floor(exact)
    remainder = int(round(total - whole.sum()))
    order = np.argsort(-(exact - whole), kind="stable")
    whole[order[:remainder]] += 1
    return whole


def trend_line(values: np.ndarray, ahead: int) -> np.ndarray:
    """A least-squares line through the observed values, extended `ahead` steps.

    Never below zero nor above twice the largest observed value.
    """
    observed = values[~np.isnan(values)]
    if observed.size == 0 or ahead <= 0:
        return np.zeros(max(ahead, 0))
    if observed.size == 1:
        return np.full(ahead, max(float(observed[0]), 0.0))
    x = np.arange(observed.size)
    slope, intercept = np.polyfit(x, observed, 1)
    future = intercept + slope * np.arange(observed.size, observed.size + ahead)
    return np.clip(future, 0.0, 2 * max(float(observed.max()), 0.0))


def mean_rate(increments: np.ndarray) -> float:
    """Mean of the non-NaN daily increments (NaN when there are none)."""
    observed = increments[~np.isnan(increments)]
    return float(observed.mean()) if observed.size else float("nan")


def fill_cumulative(
    matrix: np.ndarray,
    trend_days: int = TREND_DAYS,
    max_extrapolation: int = MAX_EXTRAPOLATION_DAYS,
) -> np.ndarray:
    """Fill gaps of cumulative rows by their trend.

    Inside a gap the known increase is spread over the missing days and the day after, along
    the daily rates before and after it (nothing invented, nothing lost); after the last report
    the recent daily trend is extrapolated (for at most `max_extrapolation` days, flat after);
    before the first report the first value holds.
    """
    filled = matrix.copy()
    for r in np.flatnonzero(np.isnan(matrix).any(axis=1)):
        row = matrix[r]
        observed = np.flatnonzero(~np.isnan(row))
        if observed.size == 0:
            continue
        first, last = observed[0], observed[-1]
        filled[r, :first] = row[first]
        for start, stop in nan_runs(row[first : last + 1]):
            start, stop = start + first, stop + first
            fill_cumulative_gap(filled[r], row, start, stop, trend_days)
        if last < row.size - 1:
            recent = np.diff(filled[r, max(first, last - trend_days) : last + 1])
            ahead = min(row.size - 1 - last, max_extrapolation)
            steps = np.round(trend_line(recent, ahead))
            filled[r, last + 1 : last + 1 + ahead] = row[last] + np.cumsum(steps)
            filled[r, last + 1 + ahead :] = filled[r, last + ahead]
    return filled


def fill_cumulative_gap(
    filled: np.ndarray, row: np.ndarray, start: int, stop: int, trend_days: int
) -> None:
    """Fill row[start:stop] (missing) between the reports on start-1 and stop, in place."""
    before, after = row[start - 1], row[stop]
    increase = after - before
    days = stop - start + 1  # the missing days and the day that reports their cases
    if increase < 0:
        filled[start:stop] = np.round(np.linspace(before, after, days + 1)[1:-1])
        return
    rate_before = mean_rate(np.diff(filled[max(0, start - 1 - trend_days) : start]))
    rate_after = mean_rate(np.diff(row[stop : stop + 1 + trend_days]))
    if np.isnan(rate_before):
        rate_before = rate_after
    if np.isnan(rate_after):
        rate_after = rate_before
    weights = np.linspace(rate_before, rate_after, days) + 1e-9
    steps = spread_total(increase, weights)
    filled[start:stop] = before + np.cumsum(steps)[:-1]


def fill_daily(
    matrix: np.ndarray,
    trend_days: int = 7,
    max_extrapolation: int = MAX_EXTRAPOLATION_DAYS,
) -> np.ndarray:
    """Fill gaps of daily rows by their trend: inside a gap from the level before to the level
    after, after the last report the recent trend (for at most `max_extrapolation` days, zero
    after), before the first report zero."""
    filled = matrix.copy()
    for r in np.flatnonzero(np.isnan(matrix).any(axis=1)):
        row = matrix[r]
        observed = np.flatnonzero(~np.isnan(row))
        if observed.size == 0:
            filled[r] = 0.0
            continue
        first, last = observed[0], observed[-1]
        filled[r, :first] = 0.0
        for start, stop in nan_runs(row[first : last + 1]):
            start, stop = start + first, stop + first
            level_before = mean_rate(row[max(0, start - trend_days) : start])
            level_after = mean_rate(row[stop : stop + trend_days])
            line = np.linspace(level_before, level_after, stop - start + 2)[1:-1]
            filled[r, start:stop] = np.round(np.clip(line, 0.0, None))
        if last < row.size - 1:
            ahead = min(row.size - 1 - last, max_extrapolation)
            recent = row[max(first, last + 1 - trend_days) : last + 1]
            filled[r, last + 1 : last + 1 + ahead] = np.round(trend_line(recent, ahead))
            filled[r, last + 1 + ahead :] = 0.0
    return filled


def daily_from_cumulative(cumulative: np.ndarray) -> np.ndarray:
    """Day-over-day differences per row; the first day keeps its cumulative value."""
    return np.diff(cumulative, axis=1, prepend=0.0)


def build_matrices(
    observations: pd.DataFrame,
    kind: str,
    *,
    date_col: str = "date",
    tract_col: str = "tract_id",
    value_col: str = "value",
) -> tuple[list[str], pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Tract ids, dates and (n_tracts, n_days) new, total and imputed arrays of the series."""
    tract_ids, dates, matrix = observation_matrix(
        observations, date_col=date_col, tract_col=tract_col, value_col=value_col
    )
    imputed = np.isnan(matrix)
    if kind == "cumulative":
        total = fill_cumulative(matrix)
        new = daily_from_cumulative(total)
    else:
        new = fill_daily(matrix)
        total = np.cumsum(new, axis=1)
    return tract_ids, dates, new, total, imputed


def stale_tail(
    values: np.ndarray, observed: np.ndarray, min_days: int, min_share: float = 0.5
) -> int:
    """How many trailing days repeat the day before value for value in every tract (a feed
    that stopped while its files kept coming); 0 when fewer than min_days do.

    A day counts only when most tracts were observed on it and on the day before.
    """
    n_tracts, n_days = values.shape
    count = 0
    for day in range(n_days - 1, 0, -1):
        both = observed[:, day] & observed[:, day - 1]
        if both.sum() < max(1, min_share * n_tracts):
            break
        if not np.array_equal(values[both, day], values[both, day - 1]):
            break
        count += 1
    return count if count >= max(min_days, 1) else 0


def build_series(
    observations: pd.DataFrame,
    kind: str,
    *,
    date_col: str = "date",
    tract_col: str = "tract_id",
    value_col: str = "value",
) -> pd.DataFrame:
    """Canonical series from one observation per (date, tract); missing days filled by trend,
    flagged imputed."""
    return series_frame(
        *build_matrices(
            observations, kind, date_col=date_col, tract_col=tract_col, value_col=value_col
        )
    )


def series_frame(
    tract_ids: list[str],
    dates: pd.DatetimeIndex,
    new: np.ndarray,
    total: np.ndarray,
    imputed: np.ndarray,
) -> pd.DataFrame:
    """Long series frame (sorted by tract then date) from (n_tracts, n_days) arrays."""
    n_tracts, n_days = new.shape
    return pd.DataFrame(
        {
            "date": np.tile(dates.to_numpy(), n_tracts),
            "tract_id": pd.Series(np.repeat(np.array(tract_ids, dtype=object), n_days), dtype=str),
            "new_cases": new.ravel().astype(float),
            "total_cases": total.ravel().astype(float),
            "imputed": imputed.ravel().astype(bool),
        }
    )


def series_matrix(
    series: pd.DataFrame,
    value: str = "new_cases",
    *,
    date_col: str = "date",
    tract_col: str = "tract_id",
) -> tuple[list[str], pd.DatetimeIndex, np.ndarray]:
    """Tract ids, dates and a (n_tracts, n_days) array of one series column."""
    wide = series.pivot(index=tract_col, columns=date_col, values=value).sort_index()
    return [str(t) for t in wide.index], pd.DatetimeIndex(wide.columns), wide.to_numpy(dtype=float)


def write_series(result: IngestResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write series.parquet and report.json into out_dir; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    series_path, report_path = out / SERIES_FILE, out / REPORT_FILE
    result.series.loc[:, list(SERIES_COLUMNS)].to_parquet(series_path, index=False)
    report = {**result.report, "data_version": result.data_version}
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return series_path, report_path


def read_series(directory: str | Path) -> pd.DataFrame:
    """Read the series.parquet written by write_series."""
    return pd.read_parquet(Path(directory) / SERIES_FILE)
