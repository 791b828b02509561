"""Observations kept or quarantined, each quarantined row with its file, line and reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.layouts import Table
from tractcast.data.schema import (
    Cells,
    Schema,
    TractLayer,
    tract_populations,
)

QUARANTINE_COLUMNS = ("file", "line", "reason", "detail")
REASONS = (
    "unparseable_date",
    "missing_tract_key",
    "missing_value",
    "non_numeric_value",
    "negative_value",
)  # and later: "conflicting_duplicate", "implausible_value"


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
