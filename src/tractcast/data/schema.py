"""Column inference by content: layout, date column, tract key joined to the layer, value column.

Layouts: "long" (one row per date and area), "wide" (one column per date) and "wide_by_tract"
(one row per date, one column per tract). Areas join the layer by a key column whose values match
a layer property, or by latitude/longitude columns mapped to tracts through the geo index.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tractcast.data.relations import (
    MIN_CELLS,
    Relation,
    find_relations,
    name_role,
    value_grid,
)
from tractcast.errors import DataRejected, InvalidInput

DATE_FORMATS = (
    "%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y%m%d",
    "%m/%d/%y", "%d/%m/%y", "%d.%m.%y", "%Y.%m.%d", "%d %b %Y", "%d-%b-%Y", "%b %d, %Y",
)  # fmt: skip
VALUE_KINDS = ("cumulative", "daily")
LAYOUTS = ("long", "wide", "wide_by_tract")
NUMBER_FORMATS = ("plain", "thousands_comma", "decimal_comma")
HEADERS = "[column headers]"
FILE_DATE = "[date in file name]"
CELLS = "[cells]"
_TIME_PART = re.compile(
    r"(T|\s+)\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)?$", re.IGNORECASE
)
_MIDNIGHT = re.compile(r"^(T|\s+)0?0:00(:00(\.0+)?)?\s*(Z|UTC|[+-]00(:?00)?)?$", re.IGNORECASE)
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$")
_THOUSANDS_COMMA = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_THOUSANDS_DOT = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+$")
_DIGIT_GROUPS = re.compile(r"(?<=\d)[\s\u00a0\u202f'](?=\d{3})")
_FLOAT_ID = re.compile(r"^\d+\.0+$")
_NON_WORD = re.compile(r"[^0-9a-z]+")


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


# --- text to keys, dates and numbers ----------------------------------------------------------


def normalise_key(value: object) -> str:
    """Casefold, drop accents, punctuation, extra spaces and leading zeros ("015" == "15" == 15)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        if value.is_integer():
            value = int(value)
    text = str(value).strip().casefold()
    if _FLOAT_ID.match(text):
        text = text.split(".", 1)[0]
    if text.isascii() and text.isdigit():
        return text.lstrip("0") or "0"
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", text).strip() if not text.isalnum() else text


def normalise_keys(values: pd.Series) -> pd.Series:
    """normalise_key over a column, computed once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.array([normalise_key(u) for u in uniques] + [""], dtype=object)
    return pd.Series(table[codes], index=values.index, dtype=object)


def parse_dates(values: pd.Series, date_format: str) -> pd.Series:
    """Parse text to days with one format (time of day stripped); NaT where it does not parse."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    days = [_TIME_PART.sub("", str(u).strip()) for u in uniques]
    parsed = pd.to_datetime(pd.Series(days, dtype=object), format=date_format, errors="coerce")
    plausible = parsed.where((parsed.dt.year >= 1900) & (parsed.dt.year <= 2100))
    table = np.append(plausible.to_numpy(dtype="datetime64[us]"), np.datetime64("NaT", "us"))
    return pd.Series(table[codes], index=values.index)


def parse_dates_in(values: pd.Series, formats: Sequence[str]) -> pd.Series:
    """Parse with the first format, then what is left with the next ones (files of one release
    may write their dates differently)."""
    parsed = parse_dates(values, formats[0])
    for fmt in formats[1:]:
        missing = parsed.isna().to_numpy()
        if not missing.any():
            break
        parsed[missing] = parse_dates(values[missing], fmt).to_numpy()
    return parsed


def other_date_formats(values: pd.Series, primary: str, max_formats: int = 3) -> tuple[str, ...]:
    """Formats reading most of the values the primary format leaves unread, one after another."""
    formats: list[str] = []
    text = pd.Series(pd.unique(values.astype(object)), dtype=object)
    text = text[text.astype(str).str.strip() != ""]
    left = text[parse_dates(text, primary).isna().to_numpy()]
    while len(left) and len(formats) < max_formats:
        readings = {fmt: parse_dates(left, fmt) for fmt in DATE_FORMATS}
        shares = {fmt: float(days.notna().mean()) for fmt, days in readings.items()}
        fmt = max(DATE_FORMATS, key=lambda key: shares[key])
        if shares[fmt] < 0.5:
            break
        rivals = [f for f in DATE_FORMATS if f != fmt and shares[f] == shares[fmt]]
        if any(not readings[f].equals(readings[fmt]) for f in rivals):
            break  # day first or month first cannot be told: those values stay unread
        formats.append(fmt)
        left = left[parse_dates(left, fmt).isna().to_numpy()]
    return tuple(formats)


def detect_number_format(values: pd.Series) -> str:
    """How numbers are written: "plain" (1234.5), "thousands_comma" (1,234.5) or
    "decimal_comma" (1.234,5 and 12,5)."""
    text = pd.Series(pd.unique(values.astype(object)), dtype=object).astype(str).str.strip()
    text = text[text != ""].str.replace(_DIGIT_GROUPS, "", regex=True)
    if text.empty:
        return "plain"
    shares = {fmt: float(parse_counts(text, fmt).notna().mean()) for fmt in NUMBER_FORMATS}
    best = max(NUMBER_FORMATS, key=lambda fmt: shares[fmt])  # ties: the earlier format
    dotted = text[text.str.contains(".", regex=False)]
    if (
        best == "plain"
        and len(dotted)
        and dotted.str.match(_THOUSANDS_DOT).all()
        and len(dotted) < len(text)
        and not text[~text.index.isin(dotted.index)].str.len().ge(4).any()
    ):
        return "decimal_comma"  # "1.234" next to "987" but never "1234": dots group thousands
    return best


def parse_counts(values: pd.Series, number_format: str = "plain") -> pd.Series:
    """Parse text to floats in one number format (NaN where not numeric)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques, dtype=object).astype(str).str.strip()
    text = text.str.replace(_DIGIT_GROUPS, "", regex=True)
    if number_format == "decimal_comma":
        ok = text.str.match(_DECIMAL_COMMA)
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        text = text.where(ok, "")
    elif number_format == "thousands_comma":
        grouped = text.str.match(_THOUSANDS_COMMA)
        text = text.where(~grouped, text.str.replace(",", "", regex=False))
    numbers = pd.to_numeric(text, errors="coerce").astype(float).to_numpy()
    table = np.append(numbers, np.nan)
    return pd.Series(table[codes], index=values.index, dtype=float)


def blank_cells(values: pd.Series) -> np.ndarray:
    """Which cells are empty or only whitespace."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    blank = pd.Series(uniques, dtype=object).astype(str).str.strip() == ""
    return np.append(blank.to_numpy(), True)[codes]


def sample_rows(frame: pd.DataFrame, n: int = 2000) -> pd.DataFrame:
    """Evenly spaced rows across the whole frame (drift over time stays visible)."""
    if len(frame) <= n:
        return frame
    return frame.iloc[np.unique(np.linspace(0, len(frame) - 1, n).astype(int))]


def best_date_format(values: pd.Series) -> tuple[str, float]:
    """The date format that parses the largest share of the values, and that share."""
    if not len(values):
        return DATE_FORMATS[0], 0.0
    unique = pd.Series(pd.unique(values.astype(object)), dtype=object)
    codes = pd.factorize(values.astype(object))[0]
    weights = np.bincount(codes[codes >= 0], minlength=len(unique)) / len(values)
    shares = {
        fmt: float(weights[parse_dates(unique, fmt).notna().to_numpy()].sum())
        for fmt in DATE_FORMATS
    }
    fmt = max(DATE_FORMATS, key=lambda key: shares[key])
    return fmt, shares[fmt]


# --- layout -----------------------------------------------------------------------------------


def header_dates(frame: pd.DataFrame) -> tuple[list[str], str, list[pd.Timestamp]]:
    """The columns whose header is a date, the format, and their dates."""
    headers = pd.Series([str(column) for column in frame.columns], dtype=object)
    fmt, share = best_date_format(headers)
    if share == 0:
        return [], fmt, []
    parsed = parse_dates(headers, fmt)
    ok = parsed.notna().to_numpy()
    return [c for c, hit in zip(frame.columns, ok, strict=True) if hit], fmt, list(parsed[ok])


def header_tracts(frame: pd.DataFrame, layer: TractLayer) -> tuple[str, list[str]]:
    """The layer property most column headers match, and those headers."""
    keys = [normalise_key(column) for column in frame.columns]
    best = ""
    matched: list[str] = []
    for prop, key_map in layer_key_maps(layer).items():
        hits = [c for c, k in zip(frame.columns, keys, strict=True) if k in key_map]
        if len(hits) > len(matched):
            best, matched = prop, hits
    return best, matched


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


# --- date -------------------------------------------------------------------------------------


def infer_date_column(
    frame: pd.DataFrame,
    column: str | None = None,
    min_share: float = 0.8,
    files: np.ndarray | None = None,
) -> DateInference:
    """The column whose values parse as dates for the most rows (at least min_share of them);
    among equals, the one with the most distinct days.

    With several files (`files`: the file of every row), a date constant within each file (a
    column, else the date in the file name) is the report date and beats a column whose values
    vary within a file (an update time, often with times of day and the next day in UTC).
    """
    columns = [column] if column else list(frame.columns)
    sample = sample_rows(frame)
    scores = {name: best_date_format(sample[name]) for name in columns}
    distinct = {name: sample[name].nunique() if scores[name][1] > 0 else 0 for name in columns}
    best = max(columns, key=lambda name: (round(scores[name][1], 2), distinct[name]))
    roles: dict[str, dict[str, Any]] = {}
    if column is None and files is not None and len(np.unique(files)) > 1:
        roles = date_roles(frame, scores, files)
        reports = [n for n, r in roles.items() if r["role"] == "report_date"]
        if reports:  # a column written in the files first, the file name's date last
            best = max(reports, key=lambda n: (n != FILE_DATE, round(scores[n][1], 2)))
    date_format = scores[best][0]
    others = other_date_formats(frame[best], date_format)
    share = float(parse_dates_in(frame[best], (date_format, *others)).notna().mean())
    evidence: dict[str, Any] = {"format": date_format, "share_parsed": round(share, 4)}
    if others:
        evidence["other_formats"] = list(others)
    if column:
        evidence["override"] = True
    else:
        evidence["candidates"] = {n: round(s, 4) for n, (_, s) in scores.items() if s > 0}
    if roles:
        evidence["source"] = roles.get(best, {}).get("role", "date")
        evidence["roles"] = roles
        evidence |= date_agreement(frame, best, date_format, roles, scores)
    if share < (0.01 if column else min_share):
        raise DataRejected(
            f"no date column: the best candidate {best!r} parses as dates in {share:.0%} of rows"
        )
    return DateInference(
        column=best, evidence=evidence, date_format=date_format, other_formats=others
    )


def has_time_of_day(values: pd.Series) -> float:
    """Share of distinct values that carry a time of day other than midnight."""
    unique = pd.Series(pd.unique(values.astype(object)), dtype=object).astype(str).str.strip()
    unique = unique[unique != ""]
    if unique.empty:
        return 0.0
    found = [_TIME_PART.search(u) for u in unique]
    clock = [m.group(0) for m in found if m is not None]
    return sum(1 for c in clock if not _MIDNIGHT.search(c)) / len(unique)


def date_roles(
    frame: pd.DataFrame,
    scores: dict[str, tuple[str, float]],
    files: np.ndarray,
    min_share: float = 0.5,
) -> dict[str, dict[str, Any]]:
    """Per date-like column: "report_date" (one day per file, varying across files) or
    "update_time" (varying within files), with its share constant per file and of times of day."""
    roles = {}
    for name, (fmt, share) in scores.items():
        if share < min_share:
            continue
        days = parse_dates_in(frame[name], (fmt, *other_date_formats(frame[name], fmt)))
        share = float(days.notna().mean())
        per_file = pd.DataFrame({"file": files, "day": days}).dropna()
        if per_file.empty:
            continue
        counts = per_file.groupby("file")["day"].nunique()
        constant = float((counts <= 1).mean())
        times = has_time_of_day(sample_rows(frame[[name]])[name])
        text = pd.DataFrame({"file": files, "text": frame[name].to_numpy()})
        same_text = float((text.groupby("file")["text"].nunique() <= 1).mean())
        varies = per_file["day"].nunique() > 1
        if times > 0 and same_text < 0.99:  # clock times that differ within a file: updates
            role = "update_time"
        elif constant >= 0.99 and varies and share >= 0.8:
            role = "report_date"
        else:
            role = "update_time" if constant < 0.99 else "constant"
        roles[name] = {
            "role": role,
            "share_parsed": round(share, 4),
            "share_files_one_day": round(constant, 4),
            "share_times_of_day": round(times, 4),
            "share_files_one_text": round(same_text, 4),
        }
    return roles


def date_agreement(
    frame: pd.DataFrame,
    chosen: str,
    chosen_format: str,
    roles: dict[str, dict[str, Any]],
    scores: dict[str, tuple[str, float]],
) -> dict[str, Any]:
    """How the other date-like columns differ from the chosen report date, in days."""
    base = parse_dates(frame[chosen], chosen_format)
    offsets: dict[str, Any] = {}
    notes = []
    for name in roles:
        if name == chosen:
            continue
        fmt = scores[name][0]
        other = parse_dates_in(frame[name], (fmt, *other_date_formats(frame[name], fmt)))
        both = base.notna() & other.notna()
        if not both.any():
            continue
        delta = (other[both] - base[both]).dt.days
        counts = delta.value_counts()
        share = float((delta != 0).mean())
        offsets[name] = {
            "share_rows_other_day": round(share, 4),
            "days_offset": {str(int(k)): int(v) for k, v in counts.head(5).items()},
        }
        if share > 0:
            usual = int(counts.index[0])
            notes.append(
                f"{name!r} ({roles[name]['role'].replace('_', ' ')}) falls on another day than "
                f"{chosen!r} in {share:.0%} of rows (most often {usual:+d} days)"
            )
    found: dict[str, Any] = {"other_dates": offsets}
    if notes:
        found["disagreement"] = "; ".join(notes)
    return found


# --- tract key --------------------------------------------------------------------------------


def layer_key_maps(layer: TractLayer, min_coverage: float = 0.9) -> dict[str, dict[str, str]]:
    """For every layer property that identifies tracts uniquely: normalised value -> tract id."""
    tracts = list(layer.tracts)
    properties = layer.properties()
    names = list(dict.fromkeys(name for props in properties for name in props))
    maps: dict[str, dict[str, str]] = {}
    for name in names:
        pairs = [
            (normalise_key(p.get(name)), t.id) for p, t in zip(properties, tracts, strict=True)
        ]
        keyed = {key: tract_id for key, tract_id in pairs if key}
        filled = sum(1 for key, _ in pairs if key)
        if len(keyed) == filled and filled >= min_coverage * len(tracts):
            maps[name] = keyed
    if layer.id_field not in maps:
        maps[layer.id_field] = {normalise_key(t.id): t.id for t in tracts}
    return maps


def score_key_pair(
    keys: set[str], completeness: float, key_map: dict[str, str], n_tracts: int
) -> dict[str, Any]:
    """Evidence that a data column joins a layer property: matched, completeness, precision."""
    matched = len(keys & key_map.keys())
    return {
        "tracts_matched": matched,
        "share_tracts_matched": round(matched / max(n_tracts, 1), 4),
        "share_rows_filled": round(completeness, 4),
        "share_keys_matched": round(matched / max(len(keys), 1), 4),
    }


def joins_enough(score: dict[str, Any], min_share: float, min_tracts: int = 10) -> bool:
    """A key joins when it covers min_share of the layer, or when it names few tracts of a big
    layer but nearly all its values are tracts (data for one region of a national layer)."""
    if score["share_tracts_matched"] >= min_share:
        return True
    return score["tracts_matched"] >= min_tracts and score["share_keys_matched"] >= 0.8


def infer_tract_key(
    frame: pd.DataFrame,
    layer: TractLayer,
    *,
    exclude: Sequence[str] = (),
    max_keys: int | None = None,
    column: str | None = None,
    min_share: float = 0.25,
) -> TractKeyInference:
    """The (data column, layer property) pair matching the largest share of the layer's tracts."""
    maps = layer_key_maps(layer)
    n_tracts = len(layer.tracts)
    columns = [column] if column else [name for name in frame.columns if name not in exclude]
    candidates = []
    for name in columns:
        normalised = normalise_keys(frame[name])
        keys = set(normalised.unique()) - {""}
        if not keys or (column is None and max_keys is not None and len(keys) > max_keys):
            continue
        completeness = float((normalised != "").mean())
        for prop, key_map in maps.items():
            score = score_key_pair(keys, completeness, key_map, n_tracts)
            if score["tracts_matched"]:
                candidates.append((name, prop, score))
    ranked = sorted(
        candidates,
        key=lambda c: (
            c[2]["share_tracts_matched"],
            round(c[2]["share_rows_filled"], 1),
            c[1] == layer.id_field,  # ids are steadier than names
            c[2]["share_keys_matched"],
        ),
        reverse=True,
    )
    if not ranked or not (column or joins_enough(ranked[0][2], min_share)):
        best = f" (best: {ranked[0][0]!r}, {ranked[0][2]['tracts_matched']})" if ranked else ""
        raise DataRejected(f"no column matches the tracts of the layer{best}")
    name, prop, score = ranked[0]
    evidence = {**score, "method": "key", "layer_property": prop, "override": bool(column)}
    evidence["candidates"] = [
        {"column": c, "layer_property": p, **s} for c, p, s in ranked[:5] if (c, p) != (name, prop)
    ]
    return TractKeyInference(
        column=name, evidence=evidence, layer_property=prop, key_map=maps[prop]
    )


def layer_bounds(layer: TractLayer) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of a layer with geometry, None for a layer without."""
    if not hasattr(layer, "positions_for_points"):
        return None
    bounds = getattr(layer, "bounds", None)
    if bounds is not None:
        west, south, east, north = (float(b) for b in bounds)
        return west, south, east, north
    if not hasattr(layer, "geometry"):
        return None
    import shapely

    geometries = [layer.geometry(t.id) for t in layer.tracts]  # type: ignore[attr-defined]
    west, south, east, north = shapely.total_bounds(geometries)
    return float(west), float(south), float(east), float(north)


def point_tracts(
    layer: TractLayer, lats: np.ndarray, lons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per point its tract id (None outside every tract) and a point key; one lookup per point."""
    points = pd.DataFrame({"lat": np.round(lats, 6), "lon": np.round(lons, 6)})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(points))
    unique = np.array([list(u) for u in uniques], dtype=float).reshape(-1, 2)
    inside = ~np.isnan(unique).any(axis=1)
    positions = np.full(len(unique), -1, dtype=np.int64)
    if inside.any():
        positions[inside] = layer.positions_for_points(  # type: ignore[attr-defined]
            unique[inside, 0], unique[inside, 1]
        )
    ids = np.array([t.id for t in layer.tracts] + [None], dtype=object)
    labels = np.array(
        [
            f"{lat:.6f},{lon:.6f}" if ok else ""
            for (lat, lon), ok in zip(unique, inside, strict=True)
        ]
        + [""],
        dtype=object,
    )
    return ids[positions][codes], labels[codes]


def infer_coordinates(
    frame: pd.DataFrame,
    layer: TractLayer,
    *,
    exclude: Sequence[str] = (),
    columns: tuple[str, str] | None = None,
    min_share: float = 0.5,
) -> TractKeyInference | None:
    """Latitude and longitude columns whose points fall inside the layer's tracts, if any."""
    bounds = layer_bounds(layer)
    if bounds is None:
        if columns:
            raise InvalidInput("the tract layer has no geometry to map coordinates to tracts")
        return None
    west, south, east, north = bounds
    sample = sample_rows(frame, 5000)
    names = [n for n in frame.columns if n not in exclude] if columns is None else list(columns)
    numbers = {}
    for name in names:
        text = sample[name].astype(object).str.strip()
        values = parse_counts(text, detect_number_format(text))
        filled = text != ""
        if columns or (filled.mean() >= 0.5 and values[filled].notna().mean() >= 0.9):
            numbers[name] = values
    lat_names = [n for n, v in numbers.items() if v.dropna().between(south, north).mean() >= 0.9]
    lon_names = [n for n, v in numbers.items() if v.dropna().between(west, east).mean() >= 0.9]
    pairs = [columns] if columns else [(a, b) for a in lat_names for b in lon_names if a != b]
    scored = []
    for lat, lon in pairs:
        if numbers[lat].nunique() < 2 and not columns:
            continue
        tracts, _ = point_tracts(layer, numbers[lat].to_numpy(), numbers[lon].to_numpy())
        filled = numbers[lat].notna().to_numpy() & numbers[lon].notna().to_numpy()
        found = np.array([t is not None for t in tracts])
        share = float(found[filled].mean()) if filled.any() else 0.0
        hit = len({t for t in tracts if t is not None})
        scored.append((hit, share, lat, lon))
    if not scored:
        return None
    hit, share, lat, lon = max(scored)
    if not columns and (share < min_share or hit < min(2, len(layer.tracts))):
        return None
    evidence = {
        "method": "coordinates",
        "latitude": lat,
        "longitude": lon,
        "tracts_matched": hit,
        "share_tracts_matched": round(hit / max(len(layer.tracts), 1), 4),
        "share_points_in_tracts": round(share, 4),
        "layer_bounds": [round(b, 4) for b in bounds],
        "override": bool(columns),
    }
    return TractKeyInference(
        column=f"{lat},{lon}",
        evidence=evidence,
        layer_property="(point in polygon)",
        coordinates=(lat, lon),
        labels=label_columns(frame, exclude=[*exclude, lat, lon]),
    )


def label_columns(
    frame: pd.DataFrame, exclude: Sequence[str], n: int = 2, max_share: float = 0.9
) -> tuple[str, ...]:
    """Up to n text columns naming areas (filled, many distinct values but not one per row
    unless max_share allows it, not numbers): they name the rows that join no tract."""
    sample = sample_rows(frame)
    scored = []
    for name in frame.columns:
        if name in exclude:
            continue
        text = sample[name].astype(object).str.strip()
        if (text == "").mean() > 0.1 or parse_counts(text).notna().mean() > 0.5:
            continue
        count = text.nunique()
        if 1 < count <= max_share * len(sample):
            scored.append((count, name))
    return tuple(name for _, name in sorted(scored, reverse=True)[:n])


def row_labels(frame: pd.DataFrame, labels: Sequence[str]) -> tuple[pd.Series, pd.Series]:
    """Each row's label as written ("a, b") and normalised; "" without label columns."""
    if not labels:
        blank = pd.Series("", index=frame.index, dtype=object)
        return blank, blank
    parts = [frame[c].astype(object).str.strip() for c in labels]
    raw = parts[0]
    for part in parts[1:]:
        raw = raw.where(part == "", raw + ", " + part).where(raw != "", part)
    return raw, normalise_keys(raw)


def infer_area(
    frame: pd.DataFrame,
    layer: TractLayer,
    *,
    exclude: Sequence[str] = (),
    max_keys: int | None = None,
    column: str | None = None,
    coordinates: tuple[str, str] | None = None,
) -> TractKeyInference:
    """How rows join tracts: a key column, else latitude/longitude (whichever joins more)."""
    if coordinates:
        found = infer_coordinates(frame, layer, exclude=exclude, columns=coordinates)
        assert found is not None
        return found
    try:
        key: TractKeyInference | None = infer_tract_key(
            frame, layer, exclude=exclude, max_keys=max_keys, column=column
        )
        refusal = None
    except DataRejected as exc:
        key, refusal = None, exc
    if column or (key is not None and key.evidence["share_tracts_matched"] >= 0.9):
        assert key is not None
        return key
    points = infer_coordinates(frame, layer, exclude=exclude)
    if points is not None and (
        key is None or points.evidence["tracts_matched"] > key.evidence["tracts_matched"]
    ):
        return points
    if key is None:
        assert refusal is not None
        raise refusal
    return key


def area_keys(frame: pd.DataFrame, tract: TractKeyInference, layer: TractLayer) -> AreaKeys:
    """Every row's area: as written, its series key, and its tract (NaN when none)."""
    label, label_keys = row_labels(frame, tract.labels)
    if tract.coordinates is None:
        raw = frame[tract.column].astype(object).str.strip()
        keys = normalise_keys(frame[tract.column])
        tracts = keys.map(tract.key_map)
        unkeyed = (keys == "") & (label_keys != "")  # a pseudo-area named only by its label
        if unkeyed.any():
            raw = raw.where(~unkeyed, label)
            keys = keys.where(~unkeyed, "~" + label_keys)
        return AreaKeys(raw=raw, keys=keys, tracts=tracts)
    lat, lon = (
        parse_counts(frame[c], detect_number_format(sample_rows(frame)[c]))
        for c in tract.coordinates
    )
    tracts, points = point_tracts(layer, lat.to_numpy(), lon.to_numpy())
    found = pd.Series([t is not None for t in tracts], index=frame.index)
    point_keys = pd.Series(points, index=frame.index, dtype=object)
    raw = point_keys.where(found, label.where(label != "", point_keys))
    keys = point_keys.where(found, label_keys.where(label_keys != "", point_keys))
    return AreaKeys(raw=raw, keys=keys, tracts=pd.Series(tracts, index=frame.index, dtype=object))


# --- value ------------------------------------------------------------------------------------


def screen_count_column(values: pd.Series, number_format: str = "plain") -> dict[str, float]:
    """Shares telling whether a column holds counts: filled, numeric, integer-like, non-negative."""
    text = values.astype(object).str.strip()
    filled = text != ""
    numbers = parse_counts(text[filled], number_format)
    numeric = numbers.notna()
    valid = numbers[numeric]
    return {
        "share_filled": float(filled.mean()) if len(text) else 0.0,
        "share_numeric": float(numeric.mean()) if len(numbers) else 0.0,
        "share_integer": float((valid == np.round(valid)).mean()) if len(valid) else 0.0,
        "share_non_negative": float((valid >= 0).mean()) if len(valid) else 0.0,
    }


def is_count_column(screen: dict[str, float], min_share: float = 0.9) -> bool:
    """Whether a screened column looks like a column of counts."""
    return all(share >= min_share for share in screen.values())


def step_evidence(dates: pd.Series, keys: pd.Series, values: pd.Series) -> dict[str, Any]:
    """Per-key day-over-day steps: how many rise, stay, fall; share rising among changes."""
    dates, keys, values = (pd.Series(np.asarray(x)) for x in (dates, keys, values))
    valid = dates.notna().to_numpy() & (keys != "").to_numpy() & (values >= 0).to_numpy()
    key_codes, _ = pd.factorize(keys[valid])
    days = dates[valid].to_numpy().astype("datetime64[D]").astype(np.int64)
    numbers = values[valid].to_numpy()
    parts = pd.DataFrame({"key": key_codes, "day": days, "value": numbers})
    if parts.duplicated(["key", "day"]).any():  # several rows per area and day: their sum
        summed = parts.groupby(["key", "day"], sort=False)["value"].sum().reset_index()
        key_codes, days, numbers = (summed[c].to_numpy() for c in ("key", "day", "value"))
    order = np.lexsort((days, key_codes))
    same_key = key_codes[order][1:] == key_codes[order][:-1]
    steps = np.diff(numbers[order])[same_key]
    rises, falls = int((steps > 0).sum()), int((steps < 0).sum())
    constant = pd.Series(numbers).groupby(key_codes).nunique() <= 1
    return {
        "steps": int(steps.size),
        "rises": rises,
        "falls": falls,
        "share_non_decreasing": round(float((steps >= 0).mean()) if steps.size else 0.0, 4),
        "share_rising_of_changes": round(rises / max(rises + falls, 1), 4),
        "share_keys_constant": round(float(constant.mean()) if len(constant) else 1.0, 4),
    }


def magnitude(values: pd.Series, keys: pd.Series, kind: str) -> float:
    """Total count a column implies: sum of per-key maxima (cumulative) or of all values (daily)."""
    if kind == "cumulative":
        return float(values.groupby(np.asarray(keys)).max().sum())
    return float(values.sum())


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in VALUE_KINDS:
        raise InvalidInput(f"value_kind must be one of {VALUE_KINDS}, got {kind!r}")


@dataclass(frozen=True, eq=False)
class ValueCandidate:
    """A column that holds counts per tract: its values, kind, implied total and evidence."""

    name: str
    kind: str
    total: float
    evidence: dict[str, Any]
    number_format: str
    values: pd.Series
    role: str  # what its name says: "cases", "other", "rate" or ""


def infer_value_column(
    frame: pd.DataFrame,
    dates: pd.Series,
    keys: pd.Series,
    *,
    exclude: Sequence[str] = (),
    column: str | None = None,
    kind: str | None = None,
    min_rising: float = 0.9,
    populations: dict[str, float] | None = None,
) -> ValueInference:
    """The raw case count among the count columns, and whether it is cumulative.

    Columns that derive from another (rates per population, rolling sums and means, daily
    differences of a cumulative column) are set aside by content (relations.py); then other
    measures (tests, deaths ...) by name; among what is left the cumulative column with the
    largest total wins, unless two columns stay indistinguishable: then the release is refused.
    """
    check_kind(kind)
    sample = sample_rows(frame)
    columns = [column] if column else [name for name in frame.columns if name not in exclude]
    rejected: dict[str, str] = {}
    candidates: list[ValueCandidate] = []
    for name in columns:
        number_format = detect_number_format(sample[name])
        screen = screen_count_column(sample[name], number_format)
        if column is None and not is_count_column(screen):
            rejected[name] = "not a count column"
            continue
        values = parse_counts(frame[name], number_format)
        steps = step_evidence(dates, keys, values)
        if column is None and steps["share_keys_constant"] >= 0.9:
            rejected[name] = "constant per tract (an attribute, not a count)"
            continue
        rising = steps["share_rising_of_changes"] >= min_rising
        chosen_kind = kind or ("cumulative" if rising else "daily")
        evidence = {k: round(v, 4) for k, v in screen.items()} | steps
        evidence["number_format"] = number_format
        total = magnitude(values, keys, chosen_kind)
        role = name_role(name)
        candidates.append(
            ValueCandidate(name, chosen_kind, total, evidence, number_format, values, role)
        )
    if not candidates:
        raise DataRejected("no value column: no column holds non-negative integer counts per tract")
    relations: list[Relation] = []
    if column is None and len(candidates) > 1:
        grid = value_grid(dates, keys, {c.name: c.values for c in candidates})
        relations = find_relations(grid, {c.name: c.kind for c in candidates})
    chosen, roles = choose_count(candidates, relations, rejected, populations or {})
    evidence = {
        **chosen.evidence,
        "implied_total": chosen.total,
        "override": bool(column),
        "rejected": rejected,
        "kind_override": kind is not None,
        "name_roles": roles,
        "relations": [r.to_dict() for r in relations],
        "other_candidates": [c.name for c in candidates if c.name != chosen.name],
    }
    return ValueInference(
        column=chosen.name, evidence=evidence, kind=chosen.kind, number_format=chosen.number_format
    )


def choose_count(
    candidates: list[ValueCandidate],
    relations: list[Relation],
    rejected: dict[str, str],
    populations: dict[str, float],
) -> tuple[ValueCandidate, dict[str, str]]:
    """The raw case count among candidates; what was set aside goes into `rejected`."""
    roles = {c.name: c.role for c in candidates}
    if len(candidates) == 1:
        return candidates[0], roles
    unresolved = set_aside_derived(candidates, relations, rejected, populations)
    pool = [c for c in candidates if c.name not in rejected]
    plain = [c for c in pool if c.role in ("cases", "")]
    if not plain:
        names = ", ".join(repr(c.name) for c in pool)
        raise DataRejected(
            f"no case count column: the count columns left ({names}) are named as rates or as "
            "other measures (tests, deaths ...); set TRACTCAST_VALUE_COLUMN to use one anyway"
        )
    for c in pool:
        if c.role in ("rate", "other"):
            rejected[c.name] = (
                "named as a rate, share or rolling window"
                if c.role == "rate"
                else "named as another measure (tests, deaths, hospital ...), not cases"
            )
    ranked = sorted(plain, key=lambda c: (c.role == "cases", c.kind == "cumulative", c.total))
    best = ranked[-1]
    plain_names = {c.name for c in plain}
    for relation in unresolved:  # only a relation of the would-be choice leaves it in doubt
        pair = {relation.column, relation.source}
        if best.name in pair and pair <= plain_names:
            raise DataRejected(ambiguous_multiple(relation))
    rivals = [c for c in ranked[:-1] if (c.role, c.kind) == (best.role, best.kind)]
    settle_rivals(best, rivals, rejected)
    return best, roles


def set_aside_derived(
    candidates: list[ValueCandidate],
    relations: list[Relation],
    rejected: dict[str, str],
    populations: dict[str, float],
) -> list[Relation]:
    """Put every column derived from another into `rejected`; return the relations that
    nothing orients (two columns that are multiples of each other)."""
    by_name = {c.name: c for c in candidates}
    unresolved = []
    for relation in relations:
        if relation.column in rejected or relation.source in rejected:
            continue
        if not relation.symmetric or relation.kind == "copy":
            rejected[relation.column] = describe_relation(relation)
            continue
        derived, why = orient_relation(relation, by_name, populations)
        if derived is None:
            unresolved.append(relation)
            continue
        source = relation.source if derived == relation.column else relation.column
        rejected[derived] = f"{describe_relation(relation, derived, source)}; {why}"
    return unresolved


def settle_rivals(
    best: ValueCandidate, rivals: list[ValueCandidate], rejected: dict[str, str]
) -> None:
    """Columns of the same kind and name class as the choice: its parts (it is their sum) or
    its subsets (never above it) are set aside; any other rival makes the choice a guess."""
    summed = sum_of_parts(best, rivals)
    if summed is not None:
        rejected.update({c.name: f"a part of {best.name!r} ({summed})" for c in rivals})
        return
    left = []
    for rival in rivals:
        share = share_not_larger(rival, best)
        if share >= 0.99:  # never above the count: a subset of its cases (active, by test ...)
            rejected[rival.name] = f"a subset of {best.name!r} (not larger in {share:.0%} of rows)"
        else:
            left.append(rival)
    if left:
        names = ", ".join(repr(c.name) for c in [best, *left])
        raise DataRejected(
            f"ambiguous value column: {names} are all {best.kind} counts"
            f"{' named as cases' if best.role == 'cases' else ''}, none derives from another, "
            "none is the sum of the others and none stays below another; set "
            "TRACTCAST_VALUE_COLUMN (and TRACTCAST_VALUE_KIND) to choose"
        )


def ambiguous_multiple(relation: Relation) -> str:
    """Why a release is refused when two columns are multiples of each other."""
    spread = (
        f"varying by {relation.factor_spread:.0%} across tracts, as a rate per population does"
        if relation.kind == "rate"
        else "the same in every tract"
    )
    return (
        f"ambiguous value column: {relation.column!r} is a constant multiple of "
        f"{relation.source!r} (factor {relation.factor:.4g}, {spread}; fit "
        f"{relation.share_fit:.0%} of {relation.cells} cells), so one derives from the other, "
        "and neither their names, a population in the tract layer nor their rounding tells "
        "which is the count; set TRACTCAST_VALUE_COLUMN (and TRACTCAST_VALUE_KIND) to choose"
    )


def share_not_larger(part: ValueCandidate, whole: ValueCandidate) -> float:
    """Share of rows where `part` is at most `whole` (0 unless it is strictly smaller somewhere)."""
    a, b = part.values.to_numpy(dtype=float), whole.values.to_numpy(dtype=float)
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < MIN_CELLS or not (a[both] < b[both]).any():
        return 0.0
    return float((a[both] <= b[both]).mean())


def sum_of_parts(best: ValueCandidate, parts: list[ValueCandidate]) -> str | None:
    """Evidence that `best` is the row-wise sum of `parts` (age or sex columns and their total)."""
    if len(parts) < 2:
        return None
    total = best.values.to_numpy(dtype=float)
    summed = np.nansum([p.values.to_numpy(dtype=float) for p in parts], axis=0)
    both = ~np.isnan(total)
    if both.sum() < MIN_CELLS:
        return None
    share = float((np.abs(total[both] - summed[both]) <= 0.5).mean())
    return f"the sum of {len(parts)} columns in {share:.0%} of rows" if share >= 0.95 else None


def describe_relation(relation: Relation, derived: str = "", source: str = "") -> str:
    """How one column derives from another, in words."""
    derived, source = derived or relation.column, source or relation.source
    over = {"identity": "", "difference": " of the daily differences"}.get(
        relation.transform, f" of the {relation.transform.split('_')[-1]}-day sums"
    )
    words = {
        "copy": f"a copy of {source!r}",
        "difference": f"the daily differences of {source!r}",
        "rolling_sum": f"the {relation.transform.split('_')[-1]}-day rolling sum of {source!r}",
        "rolling_mean": f"the {relation.transform.split('_')[-1]}-day rolling mean of {source!r}",
        "rate": f"a rate per population{over} of {source!r}",
        "scaled": f"a constant multiple (x{relation.factor:.4g}){over} of {source!r}",
    }
    return f"derived: {words[relation.kind]} (fits {relation.share_fit:.0%} of {relation.cells})"


def orient_relation(
    relation: Relation, by_name: dict[str, ValueCandidate], populations: dict[str, float]
) -> tuple[str | None, str]:
    """Which column of a symmetric multiple-of relation is the derived one, and why."""
    a, b = by_name[relation.column], by_name[relation.source]
    power = population_power(relation.factors, populations)
    if power is not None:
        derived = a.name if power > 0 else b.name
        return derived, f"x population of the tract = 10^{abs(power)} (per-capita rate)"
    roles = {a.role, b.role}
    if "rate" in roles and len(roles) == 2:
        derived = a.name if a.role == "rate" else b.name
        return derived, "its name says rate"
    integer = {c.name: c.evidence["share_integer"] >= 0.999 for c in (a, b)}
    if integer[a.name] != integer[b.name]:
        derived = b.name if integer[a.name] else a.name
        return derived, "it has decimals, the other is whole counts"
    return None, ""


def population_power(factors: dict[str, float], populations: dict[str, float]) -> int | None:
    """n when factor x population is 10^n for every tract (derived is per 10^n inhabitants),
    -n when factor / population is 10^-n (the source is the rate), else None."""
    pairs = [(f, populations[k]) for k, f in factors.items() if k in populations and f > 0]
    if len(pairs) < 2:
        return None
    factor, population = (np.array(x, dtype=float) for x in zip(*pairs, strict=True))
    for sign, products in ((1, factor * population), (-1, population / factor)):
        median = float(np.median(products))
        exponent = np.log10(median) if median > 0 else 0.0
        spread = float(np.median(np.abs(products / median - 1)))
        if spread <= 0.02 and abs(exponent - round(exponent)) <= 0.01 and round(exponent) >= 2:
            return sign * int(round(exponent))
    return None


def infer_cell_values(
    cells: Cells, text_sample: pd.Series, kind: str | None, min_rising: float = 0.9
) -> ValueInference:
    """Kind of the counts in the cells of a wide table (their number format is already known)."""
    check_kind(kind)
    tract_keys = cells.areas.keys.astype(object).where(cells.areas.tracts.notna().to_numpy(), "")
    steps = step_evidence(cells.dates, tract_keys, pd.Series(cells.values))
    screen = screen_count_column(text_sample, detect_number_format(text_sample))
    rising = steps["share_rising_of_changes"] >= min_rising
    chosen = kind or ("cumulative" if rising else "daily")
    evidence = {k: round(v, 4) for k, v in screen.items()} | steps | {"kind_override": bool(kind)}
    if not is_count_column({k: v for k, v in screen.items() if k != "share_filled"}):
        raise DataRejected("no value column: the cells under the headers are not counts")
    return ValueInference(column=CELLS, evidence=evidence, kind=chosen)


# --- cells of each layout ---------------------------------------------------------------------


def long_cells(frame: pd.DataFrame, schema: Schema, layer: TractLayer) -> Cells:
    """One cell per row: its date, area and value column."""
    text = frame[schema.value.column].astype(object).str.strip()
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


def header_areas(headers: Sequence[str], tract: TractKeyInference) -> AreaKeys:
    """Areas named by column headers (wide_by_tract)."""
    raw = pd.Series([str(h).strip() for h in headers], dtype=object)
    keys = normalise_keys(raw)
    return AreaKeys(raw=raw, keys=keys, tracts=keys.map(tract.key_map))


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


# --- the whole schema -------------------------------------------------------------------------


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


POPULATION_NAME = re.compile(
    r"pop|inhabit|resident|einwohner|abitant|habitant|poblaci|bevolking|ludnos|residenti",
    re.IGNORECASE,
)


def tract_populations(layer: TractLayer) -> tuple[str, dict[str, float]]:
    """The layer property holding each tract's population (named so, positive numbers for at
    least 90% of tracts) and tract id -> population; ("", {}) when the layer has none."""
    properties = layer.properties()
    names = [
        n for n in dict.fromkeys(k for p in properties for k in p) if POPULATION_NAME.search(n)
    ]
    for name in names:
        values = {}
        for props, tract in zip(properties, layer.tracts, strict=True):
            number = parse_counts(pd.Series([str(props.get(name, ""))], dtype=object)).iat[0]
            if number > 0:
                values[tract.id] = float(number)
        if len(values) >= 0.9 * max(len(layer.tracts), 1):
            return name, values
    return "", {}


def key_populations(tract: TractKeyInference, layer: TractLayer) -> dict[str, float]:
    """Normalised area key -> population of its tract, when the layer carries populations."""
    _, populations = tract_populations(layer)
    if not populations or tract.coordinates is not None:
        return {}
    return {k: populations[t] for k, t in tract.key_map.items() if t in populations}


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
    text_sample = pd.Series(sample[dated].to_numpy().ravel(), dtype=object)
    number_format = detect_number_format(text_sample)
    draft = Schema(
        "wide",
        date,
        tract,
        ValueInference(CELLS, number_format=number_format),
        date_headers=tuple(dated),
    )
    value = infer_cell_values(table_cells(sample, draft, layer), text_sample, value_kind)
    value = ValueInference(
        CELLS, {**value.evidence, "number_format": number_format}, value.kind, number_format
    )
    return Schema("wide", date, tract, value, date_headers=tuple(dated))


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
    text_sample = pd.Series(sample[matched].to_numpy().ravel(), dtype=object)
    number_format = detect_number_format(text_sample)
    draft = Schema(
        "wide_by_tract",
        date,
        tract,
        ValueInference(CELLS, number_format=number_format),
        tract_headers=tuple(matched),
    )
    value = infer_cell_values(table_cells(sample, draft, layer), text_sample, value_kind)
    value = ValueInference(
        CELLS, {**value.evidence, "number_format": number_format}, value.kind, number_format
    )
    return Schema("wide_by_tract", date, tract, value, tract_headers=tuple(matched))
