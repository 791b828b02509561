"""The validation report of an ingestion: what was kept, quarantined, unmatched, stale."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tractcast.data.layouts import Table
from tractcast.data.schema import (
    Schema,
    TractLayer,
)

QUARANTINE_CAP = 1000


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
