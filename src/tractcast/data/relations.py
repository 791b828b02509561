"""Relations between the numeric columns of a table: which column derives from which.

A publisher often prints a count beside what it derives from it: the same count per 100k or per
million inhabitants (a per-tract constant multiple: the factor is one over the population),
rolling 7- or 14-day sums or means of the daily count, the daily differences of a cumulative
count. Every relation here is found from content alone, as `derived ~= factor[tract] x S(source)`
over the (tract, day) grid, where S is the source itself, its daily differences or its rolling
window sums. Names only help to orient a relation that content leaves symmetric (two columns that
are constant multiples of each other), in `tractcast.data.schema`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

WINDOWS = (3, 7, 14, 21, 28)  # rolling windows publishers use (days)
MIN_CELLS = 12  # comparable non-zero cells needed before a relation is believed
MIN_FIT = 0.95  # share of comparable cells within rounding of the relation
MAX_GRID_CELLS = 500_000  # bigger grids are judged on their first tracts (relations hold in each)


@dataclass(frozen=True)
class Relation:
    """`column` ~= factor x transform(`source`); kind names what that makes `column`."""

    column: str
    source: str
    kind: str  # "copy", "difference", "rolling_sum", "rolling_mean", "rate", "scaled"
    transform: str  # "identity", "difference", "rolling_7" ...
    share_fit: float
    cells: int
    factor: float  # median factor across tracts
    factor_spread: float  # relative spread of the factor across tracts (0 for one constant)
    detail: dict[str, Any] = field(default_factory=dict)
    factors: dict[str, float] = field(default_factory=dict, repr=False)  # per tract key

    @property
    def symmetric(self) -> bool:
        """Whether content alone cannot say which of the two derives from the other."""
        return self.transform == "identity"

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "source": self.source,
            "kind": self.kind,
            "transform": self.transform,
            "share_fit": round(self.share_fit, 4),
            "cells": self.cells,
            "factor": float(f"{self.factor:.6g}"),
            "factor_spread": round(self.factor_spread, 4),
            **self.detail,
        }


@dataclass(frozen=True, eq=False)
class Grid:
    """Per column a (n_keys, n_days) array of values summed per key and day (NaN: no row)."""

    keys: list[str]
    values: dict[str, np.ndarray]
    units: dict[str, float]  # the rounding step of each column (1 for integers)


def value_grid(
    dates: pd.Series,
    keys: pd.Series,
    columns: dict[str, pd.Series],
    max_cells: int = MAX_GRID_CELLS,
) -> Grid:
    """Sum each column per (key, day) onto a full-date grid (summing keeps linear relations)."""
    dates = pd.Series(np.asarray(dates))
    keys = pd.Series(np.asarray(keys, dtype=object))
    valid = dates.notna().to_numpy() & (keys != "").to_numpy()
    key_codes, uniques = pd.factorize(keys[valid])
    days = dates[valid].to_numpy().astype("datetime64[D]").astype(np.int64)
    if not len(days):
        return Grid([], {}, {})
    n_keys, first = len(uniques), int(days.min())
    n_days = int(days.max()) - first + 1
    keep = np.ones(len(days), dtype=bool)
    if n_keys * n_days > max_cells:  # judge on the first tracts: relations hold for every one
        limit = max(1, max_cells // n_days)
        keep = key_codes < limit
        n_keys = min(n_keys, limit)
    flat = key_codes[keep] * n_days + (days[keep] - first)
    grid: dict[str, np.ndarray] = {}
    units: dict[str, float] = {}
    for name, series in columns.items():
        values = np.asarray(series, dtype=float)[valid][keep]
        present = ~np.isnan(values)
        sums = np.bincount(flat[present], weights=values[present], minlength=n_keys * n_days)
        seen = np.bincount(flat[present], minlength=n_keys * n_days) > 0
        grid[name] = np.where(seen, sums, np.nan).reshape(n_keys, n_days)
        units[name] = rounding_unit(values[present])
    return Grid([str(u) for u in uniques[:n_keys]], grid, units)


def rounding_unit(values: np.ndarray) -> float:
    """The step values are rounded to: 1 for integers, 0.1, 0.01 ... (1e-6 at the finest)."""
    sample = values[:5000]
    for decimals in range(7):
        scaled = sample * 10**decimals
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6 * np.maximum(1, np.abs(scaled))):
            return float(10.0**-decimals)
    return 1e-6


def differences(matrix: np.ndarray) -> np.ndarray:
    """Day-over-day differences per row (NaN where either day is missing; first day NaN)."""
    out = np.full_like(matrix, np.nan)
    out[:, 1:] = matrix[:, 1:] - matrix[:, :-1]
    return out


def rolling_sums(matrix: np.ndarray, window: int) -> np.ndarray:
    """Sum of the last `window` days per row, NaN unless all of them are present."""
    out = np.full_like(matrix, np.nan)
    if matrix.shape[1] < window:
        return out
    filled = np.nan_to_num(matrix)
    csum = np.cumsum(np.pad(filled, ((0, 0), (1, 0))), axis=1)
    sums = csum[:, window:] - csum[:, :-window]
    missing = np.cumsum(np.pad(np.isnan(matrix), ((0, 0), (1, 0))).astype(np.int64), axis=1)
    complete = (missing[:, window:] - missing[:, :-window]) == 0
    out[:, window - 1 :] = np.where(complete, sums, np.nan)
    return out


def fit_factor(
    derived: np.ndarray, source: np.ndarray, tolerance: np.ndarray | float
) -> tuple[float, int, np.ndarray]:
    """Share of cells where derived ~= factor[row] x source, the cells judged, per-row factors.

    Each row's factor is the ratio of sums over the cells where the source is non-zero: counts
    are big enough there for rounding to wash out.
    """
    both = ~np.isnan(derived) & ~np.isnan(source)
    usable = both & (source != 0)
    if usable.sum() < MIN_CELLS:
        return 0.0, int(usable.sum()), np.full(derived.shape[0], np.nan)
    num = np.where(usable, derived, 0.0).sum(axis=1)
    den = np.where(usable, source, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = np.where(den != 0, num / den, np.nan)
    rows = ~np.isnan(factors)
    predicted = factors[:, None] * source
    fits = np.abs(derived - predicted) <= tolerance
    judged = both & rows[:, None]
    judged_nonzero = judged & ((derived != 0) | (source != 0))
    n = int(judged_nonzero.sum())
    if n < MIN_CELLS:
        return 0.0, n, factors
    return float(fits[judged_nonzero].mean()), n, factors


def classify(transform: str, factors: np.ndarray) -> tuple[str, float, float]:
    """What a fitted relation makes the derived column, its median factor and factor spread."""
    positive = factors[np.isfinite(factors) & (factors > 0)]
    if not positive.size:
        return "", 0.0, 0.0
    median = float(np.median(positive))
    spread = float(np.median(np.abs(positive / median - 1))) if positive.size > 1 else 0.0
    varies = spread > 0.02 and positive.size >= 2
    if varies:
        return "rate", median, spread
    window = int(transform.split("_")[1]) if transform.startswith("rolling_") else 0
    if abs(median - 1) <= 0.01:
        kinds = {"identity": "copy", "difference": "difference"}
        return kinds.get(transform, "rolling_sum"), median, spread
    if window and abs(median * window - 1) <= 0.02:
        return "rolling_mean", median, spread
    return "scaled", median, spread


def source_transforms(matrix: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """The series a column may derive from: itself, its daily values, their rolling sums."""
    transforms = {"identity": matrix}
    daily = differences(matrix) if kind == "cumulative" else matrix
    if kind == "cumulative":
        transforms["difference"] = daily
    for window in WINDOWS:
        transforms[f"rolling_{window}"] = rolling_sums(daily, window)
    return transforms


def find_relations(grid: Grid, kinds: dict[str, str], min_fit: float = MIN_FIT) -> list[Relation]:
    """Every (derived, source) pair of the grid's columns that content relates, best fit first."""
    found: list[Relation] = []
    transforms = {name: source_transforms(grid.values[name], kinds[name]) for name in grid.values}
    for derived in grid.values:
        target = grid.values[derived]
        for source, options in transforms.items():
            if source == derived:
                continue
            if derived in {r.source for r in found if r.column == source and r.symmetric}:
                continue  # the identity relation is symmetric: judged once per pair
            best = best_relation(derived, source, target, options, grid, min_fit)
            if best is not None:
                found.append(best)
    return sorted(found, key=lambda r: (-r.share_fit, r.column, r.source))


def best_relation(
    derived: str,
    source: str,
    target: np.ndarray,
    options: dict[str, np.ndarray],
    grid: Grid,
    min_fit: float,
) -> Relation | None:
    """The transform of `source` that explains `derived` best, if any explains it well."""
    best: Relation | None = None
    for transform, series in options.items():
        # rounding of the derived column, plus the source's rounding scaled (both may be rounded)
        unit = grid.units[derived]
        tolerance = 0.5 * unit + 1e-3 * np.abs(np.nan_to_num(target)) + 1e-9
        if transform != "identity":
            tolerance = tolerance + 0.5 * unit
        share, cells, factors = fit_factor(target, series, tolerance)
        if share < min_fit or cells < MIN_CELLS:
            continue
        kind, factor, spread = classify(transform, factors)
        if not kind:
            continue
        per_key = {k: float(f) for k, f in zip(grid.keys, factors, strict=True) if np.isfinite(f)}
        candidate = Relation(
            derived, source, kind, transform, share, cells, factor, spread, factors=per_key
        )
        if best is None or (candidate.share_fit, -len(transform)) > (
            best.share_fit,
            -len(best.transform),
        ):
            best = candidate
    return best


# --- what names say ---------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_TOKEN = re.compile(r"[^0-9a-z%]+")
_WINDOW = re.compile(r"(^| )\d+ ?(d|day|days|tage|giorni|jours|dias|dagen)( |$)")
RATE_WORDS = frozenset(
    "per pro je par por rate rates ratio incidence incidenza inzidenz incidencia incidentie "
    "avg average mean media moyenne mittel durchschnitt pct percent percentage % share quota "
    "anteil rolling weekly week weeks woche settimana semaine semana sum7 7d 14d 28d 100k 10k "
    "1m 100000 1000000 million millions mio mln capita hab inhabitants einwohner ew positivity "
    "positivita positividad".split()
)
OTHER_MEASURE_STEMS = (
    "test", "tamp", "swab", "pcr", "antigen", "death", "dead", "deceased", "died", "fatal",
    "mort", "decedut", "decess", "todes", "tote", "deces", "muert", "fallec", "overled", "hosp",
    "ricover", "icu", "intensiv", "terapia", "bed", "recover", "guarit", "genesen", "vacc",
    "impf", "dose", "popul", "abitant", "einwohner", "isol", "quarant", "active", "attualment",
    "current", "aktiv", "actif", "activ", "admission", "discharg", "dimess",
    "ospedal", "krankenh", "hopital", "hospitali", "uci", "respirat", "ventil",
)  # fmt: skip
CASE_STEMS = (
    "case", "casi", "caso", "cas", "confirm", "infect", "infiz", "fall", "faell", "positiv",
    "besmet", "zakaz", "pripad",
)  # fmt: skip


def name_tokens(name: str) -> list[str]:
    """Words of a column name: camelCase, digits and punctuation split, accents dropped."""
    text = unicodedata.normalize("NFKD", _CAMEL.sub(" ", str(name)))
    text = text.encode("ascii", "ignore").decode().casefold()
    return [t for t in _TOKEN.split(text) if t]


def name_role(name: str) -> str:
    """What a column's name says it holds: "rate" (derived), "other" (another measure: tests,
    deaths, hospital ...), "cases", or "" when the name says nothing."""
    tokens = name_tokens(name)
    joined = " ".join(tokens)
    if any(t in RATE_WORDS for t in tokens) or _WINDOW.search(joined) or "%" in str(name):
        return "rate"
    if any(t.startswith(OTHER_MEASURE_STEMS) for t in tokens):
        return "other"
    if any(t.startswith(CASE_STEMS) for t in tokens):
        return "cases"
    return ""
