"""The whole schema of a table: layout first, then dates, areas, values and row filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.relations import (
    name_role,
)
from tractcast.data.schema.cells import table_cells
from tractcast.data.schema.coordinates import label_columns
from tractcast.data.schema.counts import (
    check_kind,
    infer_cell_values,
    infer_value_column,
    is_count_column,
    key_populations,
    screen_count_column,
)
from tractcast.data.schema.dates import header_dates, infer_date_column
from tractcast.data.schema.keys import (
    area_keys,
    header_tracts,
    infer_area,
    layer_key_maps,
    score_key_pair,
)
from tractcast.data.schema.parsing import (
    detect_number_format,
    normalise_key,
    normalise_keys,
    parse_counts,
    sample_rows,
)
from tractcast.data.schema.results import (
    CELLS,
    HEADERS,
    DateInference,
    RowFilter,
    Schema,
    TractKeyInference,
    TractLayer,
    ValueInference,
)
from tractcast.errors import DataRejected, InvalidInput


def detect_layout(
    frame: pd.DataFrame, layer: TractLayer | None = None, min_headers: int = 3
) -> str:
    """ "wide" when many headers are dates, "wide_by_tract" when they are tracts, else "long"."""
    dated, _, _ = header_dates(frame)
    if len(dated) >= min_headers and len(dated) >= 0.3 * len(frame.columns):
        return "wide"
    if layer is not None:
        _, matched = header_tracts(frame, layer)
        if len(matched) >= min_headers and len(matched) >= 0.5 * (len(frame.columns) - 1):
            return "wide_by_tract"
    return "long"


def require_column(frame: pd.DataFrame, column: str | None, role: str) -> None:
    """Raise InvalidInput when an override names a column the table does not have."""
    if column is not None and column not in frame.columns:
        raise InvalidInput(f"{role} column {column!r} is not in the table ({list(frame.columns)})")


def infer_schema(
    frame: pd.DataFrame,
    layer: TractLayer,
    *,
    date_column: str | None = None,
    tract_column: str | None = None,
    value_column: str | None = None,
    value_kind: str | None = None,
    coordinate_columns: tuple[str, str] | None = None,
    files: np.ndarray | None = None,
) -> Schema:
    """Infer layout, date, tract key and value columns of a text table; overrides skip inference.

    `files` (the file of every row) lets a date constant within each file beat update times.
    """
    for column, role in ((date_column, "date"), (tract_column, "tract"), (value_column, "value")):
        require_column(frame, column, role)
    for column in coordinate_columns or ():
        require_column(frame, column, "coordinate")
    check_kind(value_kind)
    if frame.empty or len(frame.columns) < 3:
        raise DataRejected(
            "the table needs at least three columns and one row (date, tract, value)"
        )
    layout = "long" if (date_column or value_column) else detect_layout(frame, layer)
    if layout == "wide":
        return infer_wide_schema(frame, layer, tract_column, value_kind, coordinate_columns)
    if layout == "wide_by_tract" and not (tract_column or coordinate_columns):
        return infer_wide_by_tract_schema(frame, layer, value_kind)
    date = infer_date_column(frame, column=date_column, files=files)
    dates = date.parse(frame[date.column])
    max_keys = 2 * int(dates.value_counts().max()) + 10
    tract = infer_area(
        frame,
        layer,
        exclude=[date.column],
        max_keys=max_keys,
        column=tract_column,
        coordinates=coordinate_columns,
    )
    used = [date.column, tract.column, *(tract.coordinates or ())]
    if not tract.labels:
        tract = replace(tract, labels=label_columns(frame, exclude=used))
    areas = area_keys(frame, tract, layer)
    tract_keys = areas.keys.where(areas.tracts.notna(), "")  # judge counts on real tracts only
    filters = infer_row_filters(frame, dates, tract_keys, exclude=used)
    keep = Schema("long", date, tract, ValueInference(""), row_filters=filters).kept_rows(frame)
    value = infer_value_column(
        frame[keep],
        dates[keep],
        tract_keys[keep],
        exclude=used + [f.column for f in filters],
        column=value_column,
        kind=value_kind,
        populations=key_populations(tract, layer),
    )
    return Schema(layout="long", date=date, tract=tract, value=value, row_filters=filters)


TOTAL_WORDS = frozenset(
    "total totals all overall tot alle gesamt insgesamt tutti totale todos todas total_general "
    "tous ensemble both any all_ages allages alle_altersgruppen".split()
)


def infer_row_filters(
    frame: pd.DataFrame,
    dates: pd.Series,
    keys: pd.Series,
    exclude: Sequence[str],
    max_categories: int = 50,
    min_repeated: float = 0.5,
) -> tuple[RowFilter, ...]:
    """Category columns that split area-days into rows: keep the case measure among several
    measures (never tests or deaths), else the total row among classes (age, sex); without
    either the parts stay, to be summed."""
    valid = dates.notna().to_numpy() & (keys != "").to_numpy()
    if not valid.any():
        return ()
    pairs = pd.DataFrame({"key": keys[valid].to_numpy(), "day": dates[valid].to_numpy()})
    if pairs.duplicated(keep=False).mean() < min_repeated:
        return ()
    filters = []
    sample = sample_rows(frame)
    for name in frame.columns:
        if name in exclude or parse_counts(sample[name].astype(object)).notna().mean() > 0.5:
            continue
        categories = normalise_keys(frame[name])[valid]
        distinct = categories.unique()
        if not 2 <= len(distinct) <= max_categories:
            continue
        split = pairs.assign(category=categories.to_numpy())
        if split.duplicated().mean() > 0.05:  # the column does not tell the rows apart
            continue
        found = category_filter(name, frame[name][valid], categories)
        if found is not None:
            filters.append(found)
    return tuple(filters)


def category_filter(name: str, raw: pd.Series, categories: pd.Series) -> RowFilter | None:
    """The categories to keep from one splitting column (None: keep every row, sum parts)."""
    spelled = dict(zip(categories, raw.astype(str).str.strip(), strict=True))
    roles = {c: name_role(spelled[c]) for c in spelled}
    counts = categories.value_counts()
    evidence: dict[str, Any] = {
        "column": name,
        "categories": {spelled[c]: int(n) for c, n in counts.head(20).items()},
    }
    cases = [c for c, r in roles.items() if r == "cases"]
    if cases and any(r in ("other", "rate") for r in roles.values()):
        evidence |= {"kind": "measures", "kept": [spelled[c] for c in cases]}
        return RowFilter(name, tuple(cases), evidence)
    totals = [c for c in spelled if c in TOTAL_WORDS or c.replace(" ", "_") in TOTAL_WORDS]
    if len(totals) == 1:
        evidence |= {"kind": "classes with a total row", "kept": [spelled[totals[0]]]}
        return RowFilter(name, tuple(totals), evidence)
    return None


def infer_wide_schema(
    frame: pd.DataFrame,
    layer: TractLayer,
    tract_column: str | None,
    value_kind: str | None,
    coordinate_columns: tuple[str, str] | None,
) -> Schema:
    """One column per day: the headers are the dates, the other columns name the areas."""
    dated, fmt, days = header_dates(frame)
    id_frame = frame[[c for c in frame.columns if c not in set(dated)]]
    if id_frame.columns.empty:
        raise DataRejected("the wide table has no column naming the areas of its rows")
    date = DateInference(
        column=HEADERS,
        evidence={
            "format": fmt,
            "date_columns": len(dated),
            "first": f"{min(days):%Y-%m-%d}",
            "last": f"{max(days):%Y-%m-%d}",
        },
        date_format=fmt,
    )
    tract = infer_area(id_frame, layer, column=tract_column, coordinates=coordinate_columns)
    if not tract.labels:
        used = [tract.column, *(tract.coordinates or ())]
        tract = replace(tract, labels=label_columns(id_frame, exclude=used, max_share=1.0))
    sample = sample_rows(frame, 300)
    return with_cell_values(
        Schema("wide", date, tract, CELL_DRAFT, date_headers=tuple(dated)),
        sample, dated, layer, value_kind,
    )  # fmt: skip


def infer_wide_by_tract_schema(
    frame: pd.DataFrame, layer: TractLayer, value_kind: str | None
) -> Schema:
    """One column per tract: the headers are the tracts, one column holds the dates."""
    prop, matched = header_tracts(frame, layer)
    rest = frame[[c for c in frame.columns if c not in set(matched)]]
    date = infer_date_column(rest)
    sample = sample_rows(frame, 300)
    counts = {  # unmatched count columns (pseudo-areas) are kept, to be reported
        c
        for c in rest.columns
        if c != date.column
        and is_count_column(screen_count_column(sample[c], detect_number_format(sample[c])))
    }
    matched = [c for c in frame.columns if c in set(matched) | counts]
    maps = layer_key_maps(layer)
    keys = {normalise_key(c) for c in matched}
    evidence = score_key_pair(keys, 1.0, maps[prop], len(layer.tracts))
    tract = TractKeyInference(
        column=HEADERS,
        evidence={**evidence, "method": "headers", "layer_property": prop, "override": False},
        layer_property=prop,
        key_map=maps[prop],
    )
    return with_cell_values(
        Schema("wide_by_tract", date, tract, CELL_DRAFT, tract_headers=tuple(matched)),
        sample, matched, layer, value_kind,
    )  # fmt: skip


CELL_DRAFT = ValueInference(CELLS)  # a wide schema's value before its cells are read


def with_cell_values(
    draft: Schema,
    sample: pd.DataFrame,
    columns: list[str],
    layer: TractLayer,
    value_kind: str | None,
) -> Schema:
    """A wide layout's schema with its value inferred from the sampled cells of `columns`."""
    text_sample = pd.Series(sample[columns].to_numpy().ravel(), dtype=object)
    number_format = detect_number_format(text_sample)
    draft = replace(draft, value=ValueInference(CELLS, number_format=number_format))
    value = infer_cell_values(table_cells(sample, draft, layer), text_sample, value_kind)
    value = ValueInference(
        CELLS, {**value.evidence, "number_format": number_format}, value.kind, number_format
    )
    return replace(draft, value=value)
