"""Ingestion: a raw source -> the canonical series (date x tract) and a validation report.

A source is a file, a directory, a glob, a release snapshot, a URL or an s3:// URI. Its files
are read and reconciled into one table (layouts.py), the schema is inferred by content
(schema.py), every candidate observation is kept, quarantined with its file, line and reason, or
reported as belonging to no tract; the series is built and cleaned (series.py, clean.py).
A release that cannot be understood raises DataRejected.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.clean import clean_matrices
from tractcast.data.layouts import Table, combine_tables, read_tables
from tractcast.data.schema import (
    Cells,
    Schema,
    TractLayer,
    infer_schema,
    table_cells,
    tract_populations,
)
from tractcast.data.series import build_matrices, series_frame, stale_tail
from tractcast.data.sources import fetch_all, is_remote, local_files, open_source
from tractcast.errors import DataRejected, InvalidInput
from tractcast.settings import Settings

QUARANTINE_CAP = 1000
QUARANTINE_COLUMNS = ("file", "line", "reason", "detail")
REASONS = (
    "unparseable_date",
    "missing_tract_key",
    "missing_value",
    "non_numeric_value",
    "negative_value",
)  # and later: "conflicting_duplicate", "implausible_value"


@dataclass(frozen=True, eq=False)
class IngestResult:
    """The cleaned canonical series, its validation report and the version of the raw data."""

    series: pd.DataFrame
    report: dict[str, Any]
    data_version: str


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


def filter_rows(table: Table, schema: Schema) -> tuple[Table, int]:
    """The table without the rows of other categories (tests, deaths, age classes beside a
    total row); and how many rows were left out."""
    if not schema.row_filters:
        return table, 0
    keep = schema.kept_rows(table.frame)
    if keep.all():
        return table, 0
    kept = replace(
        table,
        frame=table.frame[keep].reset_index(drop=True),
        files=table.files[keep],
        lines=table.lines[keep],
    )
    return kept, int((~keep).sum())


# --- validation -------------------------------------------------------------------------------


def cell_reasons(cells: Cells, kind: str) -> np.ndarray:
    """The quarantine reason of every cell, as 1 + its index in REASONS (0 when valid).

    A negative daily count is a correction, kept for cleaning; a negative total is an error.
    """
    values = cells.values
    checks = (
        cells.dates.isna().to_numpy(),
        (cells.areas.keys == "").to_numpy(),
        cells.empty,
        np.isnan(values),
        (values < 0) if kind == "cumulative" else np.zeros(values.size, dtype=bool),
    )
    codes = np.zeros(values.size, dtype=np.int8)
    for code, failed in reversed(list(enumerate(checks, start=1))):  # the first check wins
        codes[failed] = code
    return codes


def extract_observations(
    table: Table, cells: Cells, schema: Schema
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid observations (file, line, date, key, raw_key, tract_id, value) and quarantined rows."""
    codes = cell_reasons(cells, schema.value.kind)
    bad = np.flatnonzero(codes)
    valid = codes == 0
    reasons = np.asarray(("", *REASONS), dtype=object)[codes[bad]]
    rows = cells.rows
    observations = pd.DataFrame(
        {
            "file": table.files[rows[valid]],
            "line": table.lines[rows[valid]],
            "date": cells.dates[valid].to_numpy(),
            "key": cells.areas.keys.array[valid],
            "raw_key": cells.areas.raw.array[valid],
            "tract_id": cells.areas.tracts.array[valid],
            "value": cells.values[valid],
        }
    )
    quarantined = pd.DataFrame(
        {
            "file_index": table.files[rows[bad]],
            "line": table.lines[rows[bad]],
            "reason": reasons,
            "detail": bad_details(table, cells, schema, bad, reasons),
        }
    )
    quarantined.insert(0, "file", file_names(table, quarantined["file_index"]))
    malformed = pd.DataFrame(
        [(f, line, "malformed_line", d) for f, line, d in table.bad_lines],
        columns=list(QUARANTINE_COLUMNS),
    )
    blank = pd.DataFrame(
        [(f, line, "blank_line", "") for f, line in table.blank_lines],
        columns=list(QUARANTINE_COLUMNS),
    )
    parts = [quarantined[list(QUARANTINE_COLUMNS)], malformed, blank]
    quarantine = pd.concat([p for p in parts if not p.empty] or [malformed], ignore_index=True)
    return observations, sort_quarantine(quarantine, table.names)


def file_names(table: Table, indices: pd.Series) -> np.ndarray:
    """File names of file indices."""
    return np.asarray(table.names, dtype=object)[np.asarray(indices, dtype=np.int64)]


def quarantine_frame(
    rows: pd.DataFrame, reason: str, details: list[str], **extra: Any
) -> pd.DataFrame:
    """Quarantine entries for rows (their file and line), one reason, a detail each."""
    return pd.DataFrame(
        {
            "file": rows["file"].to_numpy(),
            "line": rows["line"].to_numpy(),
            "reason": reason,
            "detail": details,
            **extra,
        }
    )


def sort_quarantine(quarantine: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Quarantined rows in file order, then line order."""
    order = {name: i for i, name in enumerate(names)}
    ranked = quarantine.assign(_order=quarantine["file"].map(order))
    ranked = ranked.sort_values(["_order", "line"], kind="stable").drop(columns="_order")
    return ranked.reset_index(drop=True)


def bad_details(
    table: Table, cells: Cells, schema: Schema, bad: np.ndarray, reasons: np.ndarray
) -> list[str]:
    """What was wrong in each quarantined cell: the date text or the value text."""
    details = [""] * len(bad)
    value_bad = np.flatnonzero(np.isin(reasons, ("non_numeric_value", "negative_value")))
    for i, text in zip(value_bad, cells.detail(bad[value_bad]), strict=True):
        details[i] = text
    date_bad = np.flatnonzero(reasons == "unparseable_date")
    if date_bad.size and schema.date.column in table.frame.columns:
        column = table.frame[schema.date.column]
        for i in date_bad:
            details[i] = str(column.iat[cells.rows[bad[i]]])[:80]
    return details


def refuse_future_dates(observations: pd.DataFrame, table: Table, today: date | None) -> None:
    """A release dated after tomorrow cannot be right: refuse it."""
    limit = pd.Timestamp((today or date.today()) + timedelta(days=1))
    future = observations["date"] > limit
    if future.any():
        first = observations[future].iloc[0]
        raise DataRejected(
            f"dates in the future: {int(future.sum())} rows are dated after {limit:%Y-%m-%d}, "
            f"e.g. {first['date']:%Y-%m-%d} in {table.names[int(first['file'])]} "
            f"line {int(first['line'])}"
        )


def sum_disaggregated(
    observations: pd.DataFrame, min_share: float = 0.5
) -> tuple[pd.DataFrame, int]:
    """Sum rows that split one area-day into parts (age groups, sexes, sources ...).

    Recognised when most (area, day) pairs have several rows, each pair within one file (a day
    published twice in two files is a conflict, not parts). When one row of each pair is the
    total of the others (an "all ages" row), that row is kept instead of the sum.
    Returns the rows and how many were merged.
    """
    repeated = observations.duplicated(["key", "date"], keep=False)
    if repeated.mean() < min_share:
        return observations, 0
    pairs = observations.groupby(["key", "date"], observed=True, sort=False)
    if (pairs["file"].nunique() > 1).any():
        return observations, 0
    summed = pairs.agg(
        value=("value", "sum"),
        largest=("value", "max"),
        file=("file", "first"),
        line=("line", "first"),
        raw_key=("raw_key", "first"),
        tract_id=("tract_id", "first"),
    ).reset_index()
    with_total = (summed["largest"] * 2 == summed["value"]) | (summed["value"] == 0)
    if with_total.mean() >= 0.9:
        summed["value"] = summed["largest"]
    return summed.drop(columns="largest"), int(len(observations) - len(summed))


def quarantine_implausible(
    matched: pd.DataFrame, layer: TractLayer, kind: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quarantine the rows impossible for the layer: more new cases in a day than the tract has
    inhabitants (when the layer carries populations). Returns the rows kept and those set aside.
    """
    prop, populations = tract_populations(layer)
    empty = pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    if not populations or matched.empty:
        return matched, empty
    population = matched["tract_id"].astype(str).map(populations).to_numpy(dtype=float)
    values = matched["value"].to_numpy(dtype=float)
    if kind == "cumulative":  # the day's new cases: the rise since the tract's previous report
        order = matched.sort_values(["tract_id", "date"]).index
        rise = matched.loc[order].groupby("tract_id", observed=True)["value"].diff()
        values = rise.reindex(matched.index).fillna(0.0).to_numpy()
    bad = values > population  # NaN population compares False: no population, no check
    if not bad.any():
        return matched, empty
    rows = matched[bad]
    quarantined = quarantine_frame(
        rows,
        "implausible_value",
        [
            f"{v:g} new cases on {d:%Y-%m-%d} > population {p:g} ({prop})"
            for v, d, p in zip(values[bad], rows["date"], population[bad], strict=True)
        ],
    )
    return matched[~bad].reset_index(drop=True), quarantined


def refuse_national_jumps(
    dates: pd.DatetimeIndex,
    new: np.ndarray,
    factor: float = 10.0,
    window: int = 14,
    floor: float = 50.0,
) -> None:
    """A national daily total ten times the largest of the fortnight before cannot be an
    epidemic's growth: a unit or column error in the release; refuse it."""
    national = np.nansum(new, axis=0)
    for day in range(window, national.size):
        before = float(national[day - window : day].max())
        if before >= floor and national[day] > factor * before:
            raise DataRejected(
                f"implausible national total: {national[day]:g} new cases on "
                f"{dates[day]:%Y-%m-%d}, more than {factor:g} times the largest day of the "
                f"{window} days before ({before:g}); check the value column "
                "(TRACTCAST_VALUE_COLUMN) and the units of the release"
            )


def split_by_tract(observations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observations whose area joins a tract and those whose area does not (pseudo-areas)."""
    joined = observations["tract_id"].notna().to_numpy()
    matched = observations[joined]
    if not isinstance(matched["tract_id"].dtype, pd.CategoricalDtype):
        matched = matched.astype({"tract_id": str})
    return matched.reset_index(drop=True), observations[~joined].reset_index(drop=True)


def resolve_duplicates(
    observations: pd.DataFrame,
    *,
    date_col: str = "date",
    key_col: str = "key",
    value_col: str = "value",
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Collapse identical repeats of a (date, area); quarantine repeats that disagree."""
    repeated = observations.duplicated([key_col, date_col], keep=False)
    if not repeated.any():
        empty = pd.DataFrame({c: [] for c in (*QUARANTINE_COLUMNS, "date", "key")})
        return observations, empty, 0
    group = observations[repeated].groupby([key_col, date_col], observed=True)[value_col]
    conflict = pd.Series(False, index=observations.index)
    conflict[repeated] = group.transform("nunique").to_numpy() > 1
    conflicting = observations[conflict]
    details = [
        f"{raw} on {d:%Y-%m-%d}: {v:g}"
        for raw, d, v in zip(
            conflicting["raw_key"], conflicting[date_col], conflicting[value_col], strict=True
        )
    ]
    quarantine = quarantine_frame(
        conflicting,
        "conflicting_duplicate",
        details,
        date=conflicting[date_col].to_numpy(),
        key=conflicting[key_col].to_numpy(),
    )
    kept = observations[~conflict]
    deduplicated = kept.drop_duplicates([key_col, date_col], keep="first")
    return deduplicated.reset_index(drop=True), quarantine, int(len(kept) - len(deduplicated))


def refuse_conflicting_days(
    matched: pd.DataFrame, conflicts: pd.DataFrame, min_share: float = 0.5
) -> None:
    """A day reported twice with different values for most areas is a broken release."""
    if conflicts.empty:
        return
    per_day = conflicts.groupby("date")["key"].nunique()
    kept = (
        matched.groupby("date", observed=True)["key"].nunique().reindex(per_day.index, fill_value=0)
    )
    broken = per_day[(per_day >= 2) & (per_day >= min_share * (kept + per_day))]
    if broken.empty:
        return
    days = ", ".join(f"{d:%Y-%m-%d}" for d in broken.index[:5])
    files = sorted(set(conflicts[conflicts["date"].isin(broken.index)]["file"]))[:5]
    raise DataRejected(
        f"conflicting duplicate days: {days} ({len(broken)} days reported twice with different "
        f"values for most areas; files: {', '.join(files)})"
    )


def aggregate_areas(matched: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Sum the areas that share a tract and a day (points mapped to one tract)."""
    per_tract_day = matched.duplicated(["tract_id", "date"], keep=False)
    if not per_tract_day.any():
        return matched, 0
    summed = matched.groupby(["tract_id", "date"], as_index=False, sort=False, observed=True).agg(
        value=("value", "sum"), line=("line", "first"), file=("file", "first")
    )
    return summed, int(len(matched) - len(summed))


def stale_report(
    stale: int, dates: pd.DatetimeIndex, published_until: pd.Timestamp, min_days: int
) -> dict[str, Any]:
    """What the report says about a stopped feed: how many repeated days were cut, from when."""
    report: dict[str, Any] = {"stale": bool(stale), "days": int(stale), "min_days": min_days}
    if stale:
        report["last_fresh_day"] = f"{dates[-1]:%Y-%m-%d}"
        report["published_until"] = f"{published_until:%Y-%m-%d}"
        report["reason"] = (
            f"the last {stale} days repeat {dates[-1]:%Y-%m-%d} value for value in every tract: "
            "the feed stopped while its files kept coming; those days are not actuals and were "
            "cut from the series"
        )
    return report


# --- report -----------------------------------------------------------------------------------


def summarise_unmatched(
    unmatched: pd.DataFrame, kind: str, *, key_col: str = "key", raw_col: str = "raw_key"
) -> dict[str, dict[str, Any]]:
    """Per data area without a tract: its rows, dates and total (last cumulative or daily sum)."""
    summary: dict[str, dict[str, Any]] = {}
    if unmatched.empty:
        return summary
    ordered = unmatched.sort_values([key_col, "date"])
    for _, rows in ordered.groupby(key_col, sort=True, observed=True):
        label = str(rows[raw_col].mode().iloc[0])
        last = rows["value"][rows["date"] == rows["date"].max()].max()
        total = last if kind == "cumulative" else rows["value"].sum()
        summary[label] = {
            "rows": int(len(rows)),
            "total": float(total),
            "first": f"{rows['date'].min():%Y-%m-%d}",
            "last": f"{rows['date'].max():%Y-%m-%d}",
        }
    return summary


def quarantine_entries(quarantine: pd.DataFrame, cap: int = QUARANTINE_CAP) -> list[dict[str, Any]]:
    """The first `cap` quarantined rows as {"file", "line", "reason", "detail"} dicts."""
    head = quarantine.head(cap)
    return [
        {"file": str(f), "line": int(line), "reason": str(reason), "detail": str(detail)}
        for f, line, reason, detail in zip(
            head["file"], head["line"], head["reason"], head["detail"], strict=True
        )
    ]


def source_format(table: Table, schema: Schema, observations: pd.DataFrame) -> str:
    """The layout as users name it: file_per_day, file_per_tract, long, wide, wide_by_tract."""
    if len(table.names) > 1 and not observations.empty:
        per_file = observations.groupby("file")
        if (per_file["date"].nunique() == 1).all() and observations["date"].nunique() > 1:
            return "file_per_day"
        if (per_file["key"].nunique() == 1).all() and observations["key"].nunique() > 1:
            return "file_per_tract"
    return schema.layout


def most_common(counts: dict[str, int]) -> str:
    return max(counts, key=lambda k: counts[k]) if counts else ""


def build_report(
    *,
    table: Table,
    schema: Schema,
    layer: TractLayer,
    series: pd.DataFrame,
    observations: pd.DataFrame,
    quarantine: pd.DataFrame,
    unmatched: pd.DataFrame,
    collapsed: int,
    aggregated: int,
    cleaning: dict[str, Any],
) -> dict[str, Any]:
    """The JSON-serialisable validation report of one ingest."""
    with_data = set(series["tract_id"].unique())
    without_data = sorted(t.id for t in layer.tracts if t.id not in with_data)
    dates = series["date"]
    reasons = quarantine["reason"].value_counts().sort_index()
    unmatched_keys = summarise_unmatched(unmatched, schema.value.kind)
    return {
        "format": source_format(table, schema, observations),
        "table_layout": schema.layout,
        "files": len(table.names),
        "encoding": most_common(table.formats.get("encodings", {})),
        "delimiter": most_common(table.formats.get("delimiters", {})),
        "file_formats": table.formats,
        "headers": table.headers,
        "date_column": schema.date.column,
        "date_format": schema.date.date_format,
        "tract_column": schema.tract.column,
        "layer_property": schema.tract.layer_property,
        "id_field": layer.id_field,
        "value_column": schema.value.column,
        "value_kind": schema.value.kind,
        "number_format": schema.value.number_format,
        "tracts_matched": len(with_data),
        "tracts_unmatched": len(without_data),
        "tracts_without_data": without_data[:QUARANTINE_CAP],
        "unmatched_keys": dict(list(unmatched_keys.items())[:QUARANTINE_CAP]),
        "unmatched_total": float(sum(v["total"] for v in unmatched_keys.values())),
        "rows_unmatched": int(len(unmatched)),
        "days": int(dates.nunique()),
        "start": f"{dates.min():%Y-%m-%d}",
        "end": f"{dates.max():%Y-%m-%d}",
        "rows_read": table.rows_read,
        "rows_quarantined": int(len(quarantine)),
        "quarantine_reasons": {str(k): int(v) for k, v in reasons.items()},
        "quarantine": quarantine_entries(quarantine),
        "quarantine_truncated": int(max(len(quarantine) - QUARANTINE_CAP, 0)),
        "duplicates_collapsed": collapsed,
        "areas_aggregated": aggregated,
        "days_imputed": int(series["imputed"].sum()),
        "days_filled": cleaning.get("days_filled", 0),
        "evidence": schema.evidence(),
        "cleaning": cleaning,
    }
