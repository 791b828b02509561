"""Reading cells: tract keys, dates in any of the known formats, counts in any number format."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

DATE_FORMATS = (
    "%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y%m%d",
    "%m/%d/%y", "%d/%m/%y", "%d.%m.%y", "%Y.%m.%d", "%d %b %Y", "%d-%b-%Y", "%b %d, %Y",
)  # fmt: skip
NUMBER_FORMATS = ("plain", "thousands_comma", "decimal_comma")
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


def strip_text(values: pd.Series) -> pd.Series:
    """`values.astype(object).str.strip()` (NaN where not text), stripped once per distinct value:
    a long file repeats each area and count many times over."""
    values = values.astype(object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)  # the last entry for codes of -1
    table[:-1] = pd.Series(uniques, dtype=object).str.strip().to_numpy(dtype=object)
    stripped = pd.Series(table[codes], index=values.index, dtype=object)
    missing = codes < 0  # None and NaN stay what .str.strip makes of each
    if missing.any():
        stripped[missing] = values[missing].str.strip()
    return stripped


def map_distinct(values: pd.Series, mapping: dict[Any, Any]) -> pd.Series:
    """`values.map(mapping)` for a column of hashable values, looked up once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if (codes < 0).any():
        return values.map(mapping)
    table = pd.Series(uniques, dtype=values.dtype).map(mapping).to_numpy()
    return pd.Series(table[codes], index=values.index)


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


def has_time_of_day(values: pd.Series) -> float:
    """Share of distinct values that carry a time of day other than midnight."""
    unique = pd.Series(pd.unique(values.astype(object)), dtype=object).astype(str).str.strip()
    unique = unique[unique != ""]
    if unique.empty:
        return 0.0
    found = [_TIME_PART.search(u) for u in unique]
    clock = [m.group(0) for m in found if m is not None]
    return sum(1 for c in clock if not _MIDNIGHT.search(c)) / len(unique)
