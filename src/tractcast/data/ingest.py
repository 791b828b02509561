"""Ingestion: a raw source -> the canonical series (date x tract) and a validation report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.clean import clean_series
from tractcast.data.reader import RawTable, data_version, parse_table, read_source_bytes
from tractcast.data.schema import (
    Schema,
    TractLayer,
    infer_schema,
    normalise_keys,
    parse_counts,
    parse_dates,
)
from tractcast.data.series import build_series
from tractcast.errors import DataRejected

QUARANTINE_CAP = 1000
OBSERVATION_COLUMNS = ("line", "date", "key", "raw_key", "value")


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
) -> IngestResult:
    """Read one local CSV, infer its columns, quarantine bad rows, build and clean the series."""
    raw = read_source_bytes(source)
    table = parse_table(raw)
    schema = infer_schema(
        table.frame,
        index,
        date_column=date_column,
        tract_column=tract_column,
        value_column=value_column,
        value_kind=value_kind,
    )
    observations, quarantine = extract_observations(table, schema)
    matched, unmatched = split_by_tract(observations, schema.tract.key_map)
    matched, conflicts, collapsed = resolve_duplicates(matched)
    quarantine = pd.concat([quarantine, conflicts], ignore_index=True).sort_values("line")
    if matched.empty:
        raise DataRejected("no valid row belongs to a tract of the layer")
    series, cleaning = clean_series(build_series(matched, schema.value.kind))
    report = build_report(
        table=table,
        schema=schema,
        layer=index,
        series=series,
        quarantine=quarantine,
        unmatched=unmatched,
        collapsed=collapsed,
        cleaning=cleaning,
    )
    report["source"] = str(source)
    return IngestResult(series=series, report=report, data_version=data_version(raw))


def row_reasons(table: RawTable, schema: Schema) -> tuple[pd.DataFrame, np.ndarray]:
    """Parse date, key and value of every row; the quarantine reason of each row ("" if valid)."""
    frame = table.frame
    dates = parse_dates(frame[schema.date.column], schema.date.date_format)
    raw_keys = frame[schema.tract.column].astype(object).str.strip()
    keys = normalise_keys(frame[schema.tract.column])
    text = frame[schema.value.column].astype(object).str.strip()
    values = parse_counts(text)
    reasons = np.select(
        [
            dates.isna().to_numpy(),
            (keys == "").to_numpy(),
            (text == "").to_numpy(),
            values.isna().to_numpy(),
            (values < 0).to_numpy(),
        ],
        [
            "unparseable_date",
            "missing_tract_key",
            "missing_value",
            "non_numeric_value",
            "negative_value",
        ],
        default="",
    )
    parsed = pd.DataFrame(
        {"line": table.lines, "date": dates, "key": keys, "raw_key": raw_keys, "value": values}
    )
    return parsed, reasons


def extract_observations(table: RawTable, schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid observations (line, date, key, raw_key, value) and quarantined rows (line, reason)."""
    parsed, reasons = row_reasons(table, schema)
    bad = reasons != ""
    details = {
        "unparseable_date": schema.date.column,
        "missing_tract_key": schema.tract.column,
        "non_numeric_value": schema.value.column,
        "negative_value": schema.value.column,
    }
    bad_rows = table.frame[bad]
    quarantined = pd.DataFrame(
        {
            "line": table.lines[bad],
            "reason": reasons[bad],
            "detail": [
                str(bad_rows[details[r]].iloc[i])[:80] if r in details else ""
                for i, r in enumerate(reasons[bad])
            ],
        }
    )
    malformed = pd.DataFrame(
        {
            "line": [line for line, _ in table.bad_lines],
            "reason": "malformed_line",
            "detail": [detail for _, detail in table.bad_lines],
        }
    )
    blank = pd.DataFrame({"line": list(table.blank_lines), "reason": "blank_line", "detail": ""})
    frames = [f for f in (quarantined, malformed, blank) if not f.empty]
    quarantine = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"line": [], "reason": [], "detail": []})
    )
    return parsed[~bad].reset_index(drop=True), quarantine


def split_by_tract(
    observations: pd.DataFrame, key_map: dict[str, str], *, key_col: str = "key"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observations whose key joins a tract (with tract_id added) and those whose key does not."""
    tract_ids = observations[key_col].map(key_map)
    joined = tract_ids.notna()
    matched = observations[joined].assign(tract_id=tract_ids[joined].astype(str))
    return matched.reset_index(drop=True), observations[~joined].reset_index(drop=True)


def resolve_duplicates(
    observations: pd.DataFrame,
    *,
    date_col: str = "date",
    tract_col: str = "tract_id",
    value_col: str = "value",
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Collapse identical repeats of a (date, tract); quarantine repeats that disagree."""
    repeated = observations.duplicated([tract_col, date_col], keep=False)
    if not repeated.any():
        return observations, pd.DataFrame({"line": [], "reason": [], "detail": []}), 0
    group = observations[repeated].groupby([tract_col, date_col])[value_col]
    conflict = pd.Series(False, index=observations.index)
    conflict[repeated] = group.transform("nunique").to_numpy() > 1
    conflicting = observations[conflict]
    quarantine = pd.DataFrame(
        {
            "line": conflicting["line"].to_numpy(),
            "reason": "conflicting_duplicate",
            "detail": [
                f"tract {t} on {d:%Y-%m-%d}"
                for t, d in zip(conflicting[tract_col], conflicting[date_col], strict=True)
            ],
        }
    )
    kept = observations[~conflict]
    deduplicated = kept.drop_duplicates([tract_col, date_col], keep="first")
    return deduplicated.reset_index(drop=True), quarantine, int(len(kept) - len(deduplicated))


def summarise_unmatched(
    unmatched: pd.DataFrame, kind: str, *, key_col: str = "key", raw_col: str = "raw_key"
) -> dict[str, dict[str, Any]]:
    """Per data key without a tract: its rows, dates and total (last cumulative or sum of daily)."""
    summary: dict[str, dict[str, Any]] = {}
    for _, rows in unmatched.sort_values([key_col, "date"]).groupby(key_col, sort=True):
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
    """The first `cap` quarantined rows as {"line", "reason", "detail"} dicts."""
    head = quarantine.head(cap)
    return [
        {"line": int(line), "reason": str(reason), "detail": str(detail)}
        for line, reason, detail in zip(head["line"], head["reason"], head["detail"], strict=True)
    ]


def build_report(
    *,
    table: RawTable,
    schema: Schema,
    layer: TractLayer,
    series: pd.DataFrame,
    quarantine: pd.DataFrame,
    unmatched: pd.DataFrame,
    collapsed: int,
    cleaning: dict[str, Any],
) -> dict[str, Any]:
    """The JSON-serialisable validation report of one ingest."""
    with_data = set(series["tract_id"].unique())
    without_data = sorted(t.id for t in layer.tracts if t.id not in with_data)
    dates = series["date"]
    reasons = quarantine["reason"].value_counts().sort_index()
    return {
        "format": schema.layout,
        "encoding": table.encoding,
        "delimiter": table.delimiter,
        "date_column": schema.date.column,
        "date_format": schema.date.date_format,
        "tract_column": schema.tract.column,
        "layer_property": schema.tract.layer_property,
        "id_field": layer.id_field,
        "value_column": schema.value.column,
        "value_kind": schema.value.kind,
        "tracts_matched": len(with_data),
        "tracts_unmatched": len(without_data),
        "tracts_without_data": without_data[:QUARANTINE_CAP],
        "unmatched_keys": summarise_unmatched(unmatched, schema.value.kind),
        "rows_unmatched": int(len(unmatched)),
        "days": int(dates.nunique()),
        "start": f"{dates.min():%Y-%m-%d}",
        "end": f"{dates.max():%Y-%m-%d}",
        "rows_read": int(len(table.frame) + len(table.bad_lines) + len(table.blank_lines)),
        "rows_quarantined": int(len(quarantine)),
        "quarantine_reasons": {str(k): int(v) for k, v in reasons.items()},
        "quarantine": quarantine_entries(quarantine),
        "quarantine_truncated": int(max(len(quarantine) - QUARANTINE_CAP, 0)),
        "duplicates_collapsed": collapsed,
        "days_imputed": int(series["imputed"].sum()),
        "evidence": schema.evidence(),
        "cleaning": cleaning,
    }
