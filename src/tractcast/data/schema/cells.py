"""Cell extraction: the (date, area, value) cells of a table under its inferred schema."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tractcast.data.schema.keys import area_keys, header_areas
from tractcast.data.schema.parsing import blank_cells, parse_counts, parse_dates, strip_text
from tractcast.data.schema.results import AreaKeys, Cells, Schema, TractLayer


def long_cells(frame: pd.DataFrame, schema: Schema, layer: TractLayer) -> Cells:
    """One cell per row: its date, area and value column."""
    text = strip_text(frame[schema.value.column])
    values = parse_counts(text, schema.value.number_format).to_numpy()

    def detail(rows: np.ndarray) -> list[str]:
        return [str(v)[:80] for v in text.to_numpy()[rows]]

    return Cells(
        rows=np.arange(len(frame)),
        dates=schema.date.parse(frame[schema.date.column]),
        areas=area_keys(frame, schema.tract, layer),
        values=values,
        empty=(text == "").to_numpy(),
        detail=detail,
    )


def grid_cells(
    frame: pd.DataFrame,
    value_columns: Sequence[str],
    row_dates: pd.Series | None,
    column_dates: Sequence[pd.Timestamp] | None,
    row_areas: AreaKeys | None,
    column_areas: AreaKeys | None,
    number_format: str,
) -> Cells:
    """Cells of a wide table, row by row: dates and areas come from rows or from headers."""
    n_rows, n_cols = len(frame), len(value_columns)
    rows = np.repeat(np.arange(n_rows, dtype=np.int32), n_cols)
    cols = np.tile(np.arange(n_cols, dtype=np.int32), n_rows)
    values = np.empty((n_rows, n_cols))
    empty = np.empty((n_rows, n_cols), dtype=bool)
    step = max(1, 300_000 // max(n_rows, 1))  # parse blocks of columns: one pass per block
    for start in range(0, n_cols, step):
        block = list(value_columns[start : start + step])
        cells = pd.Series(frame[block].to_numpy(dtype=object).ravel(), dtype=object)
        values[:, start : start + len(block)] = (
            parse_counts(cells, number_format).to_numpy().reshape(n_rows, len(block))
        )
        empty[:, start : start + len(block)] = blank_cells(cells).reshape(n_rows, len(block))
    if row_dates is not None:
        dates = pd.Series(row_dates.to_numpy()[rows])
    else:
        dates = pd.Series(np.asarray(column_dates, dtype="datetime64[us]")[cols])
    source, index = (row_areas, rows) if row_areas is not None else (column_areas, cols)
    assert source is not None
    areas = AreaKeys(
        raw=repeat_categorical(source.raw, index),
        keys=repeat_categorical(source.keys, index),
        tracts=repeat_categorical(source.tracts, index),
    )
    names = np.asarray(value_columns, dtype=object)

    def detail(picked: np.ndarray) -> list[str]:
        return [f"{names[cols[i]]}: {str(frame[names[cols[i]]].iat[rows[i]])[:60]}" for i in picked]

    return Cells(rows, dates, areas, values.ravel(), empty.ravel(), detail)


def repeat_categorical(values: pd.Series, index: np.ndarray) -> pd.Series:
    """values[index] as a categorical (wide tables repeat each area once per cell)."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    return pd.Series(pd.Categorical.from_codes(codes[index], categories=pd.Index(uniques)))


def table_cells(frame: pd.DataFrame, schema: Schema, layer: TractLayer) -> Cells:
    """The candidate observations of a table in its layout."""
    if schema.layout == "wide":
        id_frame = frame[[c for c in frame.columns if c not in set(schema.date_headers)]]
        dates = parse_dates(
            pd.Series(list(schema.date_headers), dtype=object), schema.date.date_format
        )
        return grid_cells(
            frame,
            schema.date_headers,
            None,
            list(dates),
            area_keys(id_frame, schema.tract, layer),
            None,
            schema.value.number_format,
        )
    if schema.layout == "wide_by_tract":
        return grid_cells(
            frame,
            schema.tract_headers,
            schema.date.parse(frame[schema.date.column]),
            None,
            None,
            header_areas(schema.tract_headers, schema.tract),
            schema.value.number_format,
        )
    return long_cells(frame, schema, layer)
