"""Ingestion: a raw source -> the canonical series (date x tract) and a validation report.

A source is a file, a directory, a glob, a release snapshot, a URL or an s3:// URI. Its files
are read and reconciled into one table (layouts.py), the schema is inferred by content
(schema/), every candidate observation is kept, quarantined with its file, line and reason
(quarantine.py), or reported as belonging to no tract (report.py); rows are summed to one value
per tract and day (aggregate.py); the series is built and cleaned (series.py, clean.py).
A release that cannot be understood raises DataRejected (refusals.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from tractcast.data.aggregate import aggregate_areas, split_by_tract, sum_disaggregated
from tractcast.data.clean import clean_matrices
from tractcast.data.layouts import Table, combine_tables, read_tables
from tractcast.data.quarantine import (
    QUARANTINE_COLUMNS,
    extract_observations,
    file_names,
    filter_rows,
    quarantine_implausible,
    resolve_duplicates,
    sort_quarantine,
)
from tractcast.data.refusals import (
    refuse_conflicting_days,
    refuse_future_dates,
    refuse_national_jumps,
)
from tractcast.data.report import build_report, stale_report
from tractcast.data.schema import (
    TractLayer,
    infer_schema,
    table_cells,
)
from tractcast.data.series import IngestResult, build_matrices, series_frame, stale_tail
from tractcast.data.sources import open_source
from tractcast.data.sources.base import fetch_all, is_remote
from tractcast.data.sources.local import local_files
from tractcast.errors import DataRejected, InvalidInput
from tractcast.settings import Settings


def ingest_source(
    source: str | Path,
    index: TractLayer,
    *,
    date_column: str | None = None,
    tract_column: str | None = None,
    value_column: str | None = None,
    value_kind: str | None = None,
    coordinate_columns: tuple[str, str] | None = None,
    today: date | None = None,
    stale_days: int = 3,
) -> IngestResult:
    """Read a source (file, folder, glob, snapshot, URL, s3://); infer, validate, build, clean."""
    with source_files(source) as files:
        tables, names, version = read_tables(files)
    table = combine_tables(tables, names)
    del tables
    result = ingest_table(
        table,
        index,
        version,
        date_column=date_column,
        tract_column=tract_column,
        value_column=value_column,
        value_kind=value_kind,
        coordinate_columns=coordinate_columns,
        today=today,
        stale_days=stale_days,
    )
    result.report["source"] = str(source)
    return result


def ingest_options(settings: Settings) -> dict[str, Any]:
    """The inference overrides the settings hold (TRACTCAST_DATE_COLUMN ...)."""
    coordinates = None
    if settings.coordinate_columns:
        parts = [part.strip() for part in settings.coordinate_columns.split(",")]
        if len(parts) != 2 or not all(parts):
            raise InvalidInput(
                "coordinate columns must be 'latitude,longitude', "
                f"got {settings.coordinate_columns!r}"
            )
        coordinates = (parts[0], parts[1])
    return {
        "date_column": settings.date_column,
        "tract_column": settings.tract_column,
        "value_column": settings.value_column,
        "value_kind": settings.value_kind,
        "coordinate_columns": coordinates,
        "stale_days": settings.stale_days,
    }


@contextmanager
def source_files(source: str | Path) -> Iterator[dict[str, Path]]:
    """Entry name -> local path: local sources in place, remote ones fetched into a temp dir."""
    opened = open_source(source)
    files = local_files(opened)
    if files is not None:
        yield files
        return
    assert is_remote(source)
    with tempfile.TemporaryDirectory(prefix="tractcast-fetch-") as tmp:
        fetched = fetch_all(opened, Path(tmp))
        yield {name: Path(tmp) / name for name in sorted(fetched.state["entries"])}


def ingest_table(
    table: Table,
    index: TractLayer,
    version: str,
    *,
    date_column: str | None = None,
    tract_column: str | None = None,
    value_column: str | None = None,
    value_kind: str | None = None,
    coordinate_columns: tuple[str, str] | None = None,
    today: date | None = None,
    stale_days: int = 3,
) -> IngestResult:
    """Infer the schema of a combined table, then validate, build and clean its series.

    A tail of at least `stale_days` days that repeat the day before (a stopped feed) is cut off
    and reported under "stale"; 0 keeps every day.
    """
    schema = infer_schema(
        table.frame,
        index,
        date_column=date_column,
        tract_column=tract_column,
        value_column=value_column,
        value_kind=value_kind,
        coordinate_columns=coordinate_columns,
        files=table.files,
    )
    rows_read = table.rows_read
    table, filtered = filter_rows(table, schema)
    cells = table_cells(table.frame, schema, index)
    observations, quarantine = extract_observations(table, cells, schema)
    del cells
    refuse_future_dates(observations, table, today)
    observations, summed = sum_disaggregated(observations)
    matched, unmatched = split_by_tract(observations)
    matched, conflicts, collapsed = resolve_duplicates(matched)
    conflicts = conflicts.assign(file=file_names(table, conflicts["file"]))
    refuse_conflicting_days(matched, conflicts)
    quarantine = pd.concat([quarantine, conflicts[list(QUARANTINE_COLUMNS)]], ignore_index=True)
    quarantine = sort_quarantine(quarantine, table.names)
    matched, aggregated = aggregate_areas(matched)
    matched, implausible = quarantine_implausible(matched, index, schema.value.kind)
    if not implausible.empty:
        implausible = implausible.assign(file=file_names(table, implausible["file"]))
        quarantine = sort_quarantine(pd.concat([quarantine, implausible]), table.names)
    if matched.empty:
        raise DataRejected("no valid row belongs to a tract of the layer")
    tract_ids, dates, new, total, imputed = build_matrices(matched, schema.value.kind)
    del matched
    raw = total if schema.value.kind == "cumulative" else new
    stale = stale_tail(raw, ~imputed, stale_days) if stale_days else 0
    published_until = dates[-1]
    if stale:  # repeated days are not actuals: the series ends at the last fresh day
        new, total, imputed, dates = (
            new[:, :-stale],
            total[:, :-stale],
            imputed[:, :-stale],
            dates[:-stale],
        )
    new, total, flags, repairs = clean_matrices(tract_ids, dates, new, total, imputed)
    refuse_national_jumps(dates, new)
    cleaning = {"days_filled": int(imputed.sum())} | repairs
    series = series_frame(tract_ids, dates, new, total, flags)
    del new, total, flags
    report = build_report(
        table=table,
        schema=schema,
        layer=index,
        series=series,
        observations=observations,
        quarantine=quarantine,
        unmatched=unmatched,
        collapsed=collapsed,
        aggregated=aggregated,
        cleaning=cleaning,
    )
    report["rows_summed"] = summed
    report["rows_filtered"] = filtered
    report["rows_read"] = rows_read
    report["stale"] = stale_report(stale, dates, published_until, stale_days)
    return IngestResult(series=series, report=report, data_version=version)
