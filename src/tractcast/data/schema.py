"""Column inference by content: layout, date column, tract key joined to the layer, value column."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tractcast.errors import DataRejected, InvalidInput

DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y%m%d")
VALUE_KINDS = ("cumulative", "daily")
_TIME_PART = re.compile(r"[T ].*$")


class TractLike(Protocol):
    id: str
    name: str


class TractLayer(Protocol):
    """What inference needs from a tract layer (tractcast.geo.index.TractIndex satisfies it)."""

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


@dataclass(frozen=True)
class TractKeyInference(ColumnInference):
    layer_property: str = ""
    key_map: dict[str, str] = field(default_factory=dict)  # normalised key -> tract id


@dataclass(frozen=True)
class ValueInference(ColumnInference):
    kind: str = "cumulative"


@dataclass(frozen=True)
class Schema:
    layout: str
    date: DateInference
    tract: TractKeyInference
    value: ValueInference

    def evidence(self) -> dict[str, Any]:
        """The evidence of every inference, keyed by role."""
        return {
            "date": self.date.evidence,
            "tract": self.tract.evidence,
            "value": self.value.evidence,
        }


def normalise_key(value: object) -> str:
    """Strip, casefold, and drop leading zeros of digit strings, so "015", "15" and 15 agree."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        if value.is_integer():
            value = int(value)
    text = str(value).strip().casefold()
    if text.isascii() and text.isdigit():
        return text.lstrip("0") or "0"
    return text


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


def sample_rows(frame: pd.DataFrame, n: int = 2000) -> pd.DataFrame:
    """Evenly spaced rows across the whole frame (drift over time stays visible)."""
    if len(frame) <= n:
        return frame
    return frame.iloc[np.unique(np.linspace(0, len(frame) - 1, n).astype(int))]


def best_date_format(values: pd.Series) -> tuple[str, float]:
    """The date format that parses the largest share of the values, and that share."""
    shares = {fmt: float(parse_dates(values, fmt).notna().mean()) for fmt in DATE_FORMATS}
    fmt = max(shares, key=lambda key: shares[key])
    return fmt, shares[fmt] if len(values) else 0.0


def detect_layout(frame: pd.DataFrame, min_date_headers: int = 3) -> str:
    """ "wide" when many column headers are dates (one column per day), else "long"."""
    headers = pd.Series([str(column) for column in frame.columns], dtype=object)
    _, share = best_date_format(headers)
    if share * len(headers) >= min_date_headers and share >= 0.5:
        return "wide"
    return "long"


def infer_date_column(
    frame: pd.DataFrame, column: str | None = None, min_share: float = 0.8
) -> DateInference:
    """The column whose values parse as dates for the most rows (at least min_share of them)."""
    columns = [column] if column else list(frame.columns)
    sample = sample_rows(frame)
    scores = {name: best_date_format(sample[name]) for name in columns}
    best = max(columns, key=lambda name: scores[name][1])
    date_format = scores[best][0]
    share = float(parse_dates(frame[best], date_format).notna().mean())
    evidence: dict[str, Any] = {"format": date_format, "share_parsed": round(share, 4)}
    if column:
        evidence["override"] = True
    else:
        evidence["candidates"] = {n: round(s, 4) for n, (_, s) in scores.items() if s > 0}
    if share < (0.01 if column else min_share):
        raise DataRejected(
            f"no date column: the best candidate {best!r} parses as dates in {share:.0%} of rows"
        )
    return DateInference(column=best, evidence=evidence, date_format=date_format)


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
            c[2]["share_rows_filled"],
            c[2]["share_keys_matched"],
            c[1] == layer.id_field,
        ),
        reverse=True,
    )
    if not ranked or ranked[0][2]["share_tracts_matched"] < (0.0 if column else min_share):
        best = f" (best: {ranked[0][0]!r}, {ranked[0][2]['tracts_matched']})" if ranked else ""
        raise DataRejected(f"no column matches the tracts of the layer{best}")
    name, prop, score = ranked[0]
    evidence = {**score, "layer_property": prop, "override": bool(column)}
    evidence["candidates"] = [
        {"column": c, "layer_property": p, **s} for c, p, s in ranked[:5] if (c, p) != (name, prop)
    ]
    return TractKeyInference(
        column=name, evidence=evidence, layer_property=prop, key_map=maps[prop]
    )


def parse_counts(values: pd.Series) -> pd.Series:
    """Parse text to floats (NaN where not numeric)."""
    return pd.to_numeric(values.astype(object).str.strip(), errors="coerce").astype(float)


def screen_count_column(values: pd.Series) -> dict[str, float]:
    """Shares telling whether a column holds counts: filled, numeric, integer-like, non-negative."""
    text = values.astype(object).str.strip()
    filled = text != ""
    numbers = parse_counts(text[filled])
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
    valid = dates.notna().to_numpy() & (keys != "").to_numpy() & (values >= 0).to_numpy()
    key_codes, _ = pd.factorize(keys[valid])
    days = dates[valid].to_numpy().astype("datetime64[D]").astype(np.int64)
    numbers = values[valid].to_numpy()
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
        return float(values.groupby(keys.to_numpy()).max().sum())
    return float(values.sum())


def infer_value_column(
    frame: pd.DataFrame,
    dates: pd.Series,
    keys: pd.Series,
    *,
    exclude: Sequence[str] = (),
    column: str | None = None,
    kind: str | None = None,
    min_rising: float = 0.9,
) -> ValueInference:
    """The count column (cumulative first, then largest total) and whether it is cumulative."""
    if kind is not None and kind not in VALUE_KINDS:
        raise InvalidInput(f"value_kind must be one of {VALUE_KINDS}, got {kind!r}")
    sample = sample_rows(frame)
    columns = [column] if column else [name for name in frame.columns if name not in exclude]
    rejected: dict[str, str] = {}
    candidates = []
    for name in columns:
        screen = screen_count_column(sample[name])
        if column is None and not is_count_column(screen):
            rejected[name] = "not a count column"
            continue
        values = parse_counts(frame[name])
        steps = step_evidence(dates, keys, values)
        if column is None and steps["share_keys_constant"] >= 0.9:
            rejected[name] = "constant per tract (an attribute, not a count)"
            continue
        rising = steps["share_rising_of_changes"] >= min_rising
        chosen_kind = kind or ("cumulative" if rising else "daily")
        evidence = {k: round(v, 4) for k, v in screen.items()} | steps
        candidates.append((name, chosen_kind, magnitude(values, keys, chosen_kind), evidence))
    if not candidates:
        raise DataRejected("no value column: no column holds non-negative integer counts per tract")
    ranked = sorted(candidates, key=lambda c: (c[1] == "cumulative", c[2]), reverse=True)
    name, chosen_kind, total, evidence = ranked[0]
    evidence = {**evidence, "implied_total": total, "override": bool(column), "rejected": rejected}
    evidence["kind_override"] = kind is not None
    evidence["other_candidates"] = [c[0] for c in ranked[1:]]
    return ValueInference(column=name, evidence=evidence, kind=chosen_kind)


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
) -> Schema:
    """Infer layout, date, tract key and value columns of a text table; overrides skip inference."""
    for column, role in ((date_column, "date"), (tract_column, "tract"), (value_column, "value")):
        require_column(frame, column, role)
    if frame.empty or len(frame.columns) < 3:
        raise DataRejected(
            "the table needs at least three columns and one row (date, tract, value)"
        )
    layout = detect_layout(frame)
    if layout != "long":
        raise DataRejected(f"the {layout} layout is not supported yet (one row per date and tract)")
    date = infer_date_column(frame, column=date_column)
    dates = parse_dates(frame[date.column], date.date_format)
    max_keys = 2 * int(dates.value_counts().max()) + 10
    tract = infer_tract_key(
        frame, layer, exclude=[date.column], max_keys=max_keys, column=tract_column
    )
    keys = normalise_keys(frame[tract.column])
    tract_keys = keys.where(keys.isin(list(tract.key_map)), "")  # judge counts on real tracts only
    value = infer_value_column(
        frame,
        dates,
        tract_keys,
        exclude=[date.column, tract.column],
        column=value_column,
        kind=value_kind,
    )
    return Schema(layout=layout, date=date, tract=tract, value=value)
