"""What inference produces (the Schema and its parts) and what it needs from a tract layer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tractcast.data.schema.parsing import normalise_keys, parse_dates_in

VALUE_KINDS = ("cumulative", "daily")
LAYOUTS = ("long", "wide", "wide_by_tract")
HEADERS = "[column headers]"
FILE_DATE = "[date in file name]"
CELLS = "[cells]"


class TractLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


class TractLayer(Protocol):
    """What inference needs from a tract layer (tractcast.geo.index.TractIndex satisfies it).

    A layer that also offers `positions_for_points(lats, lons)` and `geometry(tract_id)` can
    join data by coordinates.
    """

    id_field: str

    @property
    def tracts(self) -> Sequence[TractLike]: ...

    def properties(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ColumnInference:
    column: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DateInference(ColumnInference):
    date_format: str = "%Y-%m-%d"
    other_formats: tuple[str, ...] = ()  # formats of the values the main one does not read

    def parse(self, values: pd.Series) -> pd.Series:
        """The column's days, each value read with the first of its formats that reads it."""
        return parse_dates_in(values, (self.date_format, *self.other_formats))


@dataclass(frozen=True)
class TractKeyInference(ColumnInference):
    layer_property: str = ""
    key_map: dict[str, str] = field(default_factory=dict)  # normalised key -> tract id
    coordinates: tuple[str, str] | None = None  # (latitude, longitude) columns
    labels: tuple[str, ...] = ()  # text columns naming the areas that join no tract


@dataclass(frozen=True)
class ValueInference(ColumnInference):
    kind: str = "cumulative"
    number_format: str = "plain"


@dataclass(frozen=True)
class Schema:
    layout: str
    date: DateInference
    tract: TractKeyInference
    value: ValueInference
    date_headers: tuple[str, ...] = ()  # wide: the columns holding one day each
    tract_headers: tuple[str, ...] = ()  # wide_by_tract: the columns holding one tract each
    row_filters: tuple[RowFilter, ...] = ()  # long: rows kept by category (total, cases)

    def evidence(self) -> dict[str, Any]:
        """The evidence of every inference, keyed by role."""
        return {
            "date": self.date.evidence,
            "tract": self.tract.evidence,
            "value": self.value.evidence,
            "categories": [f.evidence for f in self.row_filters],
        }

    def kept_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of the table the row filters keep (all rows without filters)."""
        keep = np.ones(len(frame), dtype=bool)
        for row_filter in self.row_filters:
            keep &= row_filter.keeps(frame)
        return keep


@dataclass(frozen=True)
class RowFilter:
    """A category column splitting each area-day into rows (measure, age class, sex) and the
    categories kept: the case measure, or the all-ages/total row."""

    column: str
    keep: tuple[str, ...]  # normalised category values kept
    evidence: dict[str, Any] = field(default_factory=dict)

    def keeps(self, frame: pd.DataFrame) -> np.ndarray:
        return normalise_keys(frame[self.column]).isin(self.keep).to_numpy()


@dataclass(frozen=True, eq=False)
class AreaKeys:
    """Per row: the area as written, its series key (normalised key or point) and its tract."""

    raw: pd.Series
    keys: pd.Series  # "" when the row names no area
    tracts: pd.Series  # tract id, NaN when the area joins no tract


@dataclass(frozen=True, eq=False)
class Cells:
    """One candidate observation per row (long) or per cell (wide layouts)."""

    rows: np.ndarray  # row of the table each cell comes from
    dates: pd.Series
    areas: AreaKeys
    values: np.ndarray  # parsed numbers, NaN where empty or not numeric
    empty: np.ndarray
    detail: Callable[[np.ndarray], list[str]]  # the value text of some cells, for quarantine
