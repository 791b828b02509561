"""The canonical series (one row per tract per day, new and total cases): build, reshape, write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tractcast.data.ingest import IngestResult

SERIES_COLUMNS = ("date", "tract_id", "new_cases", "total_cases", "imputed")
SERIES_FILE = "series.parquet"
REPORT_FILE = "report.json"


def observation_matrix(
    observations: pd.DataFrame,
    *,
    date_col: str = "date",
    tract_col: str = "tract_id",
    value_col: str = "value",
) -> tuple[list[str], pd.DatetimeIndex, np.ndarray]:
    """Observed values as a (n_tracts, n_days) array over the full date range, NaN where missing."""
    tract_ids = sorted(observations[tract_col].unique())
    dates = pd.date_range(observations[date_col].min(), observations[date_col].max(), freq="D")
    rows = pd.Index(tract_ids).get_indexer(observations[tract_col])
    cols = dates.get_indexer(observations[date_col])
    matrix = np.full((len(tract_ids), len(dates)), np.nan)
    matrix[rows, cols] = observations[value_col].to_numpy(dtype=float)
    return tract_ids, dates, matrix


def fill_cumulative(matrix: np.ndarray) -> np.ndarray:
    """Fill gaps of cumulative rows: linear (rounded) inside, first value before, last after."""
    frame = pd.DataFrame(matrix.T)
    inside = frame.interpolate(method="linear", limit_area="inside").round()
    return inside.bfill().ffill().to_numpy().T


def daily_from_cumulative(cumulative: np.ndarray) -> np.ndarray:
    """Day-over-day differences per row; the first day keeps its cumulative value."""
    return np.diff(cumulative, axis=1, prepend=0.0)


def build_series(
    observations: pd.DataFrame,
    kind: str,
    *,
    date_col: str = "date",
    tract_col: str = "tract_id",
    value_col: str = "value",
) -> pd.DataFrame:
    """Canonical series from one observation per (date, tract); missing days filled and imputed."""
    tract_ids, dates, matrix = observation_matrix(
        observations, date_col=date_col, tract_col=tract_col, value_col=value_col
    )
    imputed = np.isnan(matrix)
    if kind == "cumulative":
        total = fill_cumulative(matrix)
        new = daily_from_cumulative(total)
    else:
        new = np.nan_to_num(matrix, nan=0.0)
        total = np.cumsum(new, axis=1)
    return series_frame(tract_ids, dates, new, total, imputed)


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
