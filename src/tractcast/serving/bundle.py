"""Serving bundles: every tract's latest counts and forecast, made once, read by the API."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tractcast.errors import InvalidInput, Unavailable

BUNDLE_FILE = "bundle.json"
CHECKSUM_FILE = "bundle.sha256"
FORMAT = 1
MAIN_INTERVAL = 0.8  # the central interval every forecast day's lower/upper bound


@dataclass(frozen=True, slots=True)
class ForecastDay:
    date: str  # ISO date
    new_cases: float
    lower: float  # the 80% interval
    upper: float
    # the other central intervals, (level, lower, upper) narrowest first: 50% and 95%. Empty
    # for a bundle written before they existed, or by a model that has only the 80% one.
    bands: tuple[tuple[float, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class TractForecast:
    tract_id: str
    as_of: str  # ISO date of the last observed day
    total_cases: int
    new_cases: int  # on the as_of day
    forecast: tuple[ForecastDay, ...]  # horizons 1..14
    # Daily new cases of the days up to as_of, oldest first (the last one is as_of's). Optional:
    # bundles written before it existed, or without it, load with an empty history.
    history: tuple[int, ...] = ()


@dataclass(frozen=True)
class Bundle:
    bundle_id: str
    model_version: str
    data_version: str
    as_of: str
    created_at: str
    horizon: int
    tracts: Mapping[str, TractForecast]  # a loaded bundle holds a TractTable
    # Answers rendered from this bundle, kept for reuse by tractcast.serving.answers (the bundle
    # never changes, so neither do they). Not part of the bundle: never written, never compared.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


class TractTable(Mapping[str, TractForecast]):
    """A loaded bundle's tracts held in arrays; each look-up makes its TractForecast.

    Python objects per forecast day cost about 5 kB a tract: 435 MB in every API worker for a
    layer of 85,000 tracts. The arrays hold the same numbers in well under 1 kB a tract, and no
    Python object per tract is kept but the look-up's dict (`bench.census` measures it).
    """

    def __init__(
        self,
        ids: np.ndarray,  # tract ids, unicode
        as_of: tuple[np.ndarray, np.ndarray],  # (distinct days, which one per tract)
        counts: np.ndarray,  # (total_cases, new_cases) per tract
        dates: tuple[np.ndarray, np.ndarray],  # (distinct runs of forecast days, which per tract)
        values: np.ndarray,  # (new_cases, lower, upper) per tract and day: the 80% interval
        bands: tuple[list[tuple[float, ...]], np.ndarray, np.ndarray],  # levels, which, bounds
        history: tuple[np.ndarray, np.ndarray],  # (every count, where each tract's run ends)
    ) -> None:
        self._ids, self._as_of, self._counts = ids, as_of, counts
        self._dates, self._values, self._bands, self._history = dates, values, bands, history
        self._positions: dict[str, int] | None = None

    def _position(self, tract_id: object) -> int | None:
        if self._positions is None:  # made on first use, after the parsed JSON is gone
            self._positions = {tract_id: n for n, tract_id in enumerate(self._ids.tolist())}
        return self._positions.get(tract_id)  # type: ignore[call-overload]

    def __getitem__(self, tract_id: str) -> TractForecast:
        n = self._position(tract_id)
        if n is None:
            raise KeyError(tract_id)
        level_sets, which_levels, bounds = self._bands
        levels = level_sets[which_levels[n]]
        dates = self._dates[0][self._dates[1][n]].tolist()
        days = tuple(
            ForecastDay(
                date,
                new,
                lower,
                upper,
                tuple((lv, lo, hi) for lv, (lo, hi) in zip(levels, extra, strict=False)),
            )
            for date, (new, lower, upper), extra in zip(
                dates, self._values[n].tolist(), bounds[n].tolist(), strict=True
            )
        )
        counts, ends = self._history
        start = int(ends[n - 1]) if n else 0
        total, new_cases = self._counts[n].tolist()
        return TractForecast(
            tract_id=tract_id,
            as_of=str(self._as_of[0][self._as_of[1][n]]),
            total_cases=total,
            new_cases=new_cases,
            forecast=days,
            history=tuple(counts[start : int(ends[n])].tolist()),
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, tract_id: object) -> bool:
        return self._position(tract_id) is not None


def bundle_id_for(model_version: str, data_version: str) -> str:
    """The id of the bundle a model version makes from a data version."""
    return f"{model_version}@{data_version}"


def write_bundle(bundle: Bundle, directory: Path) -> None:
    """Write bundle.json and its SHA-256 checksum into directory (which must not exist yet)."""
    try:
        payload = json.dumps(_bundle_to_json(bundle), separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise InvalidInput(f"bundle {bundle.bundle_id} has a non-finite number") from exc
    data = payload.encode()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=False)
    _write_synced(directory / BUNDLE_FILE, data)
    _write_synced(directory / CHECKSUM_FILE, hashlib.sha256(data).hexdigest().encode() + b"\n")


def load_bundle(directory: Path) -> Bundle:
    """Read and verify a bundle; a missing, truncated or tampered bundle raises Unavailable."""
    directory = Path(directory)
    name = directory.name
    try:
        data = (directory / BUNDLE_FILE).read_bytes()
        expected = (directory / CHECKSUM_FILE).read_text().strip()
    except OSError as exc:
        raise Unavailable(f"bundle {name} is corrupt: {exc.strerror or 'unreadable'}") from exc
    if hashlib.sha256(data).hexdigest() != expected:
        raise Unavailable(f"bundle {name} is corrupt: checksum mismatch")
    try:
        return _bundle_from_json(json.loads(data))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise Unavailable(f"bundle {name} is corrupt: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _bundle_to_json(bundle: Bundle) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "bundle_id": bundle.bundle_id,
        "model_version": bundle.model_version,
        "data_version": bundle.data_version,
        "as_of": bundle.as_of,
        "created_at": bundle.created_at,
        "horizon": bundle.horizon,
        "tracts": {
            tract_id: {
                "as_of": tract.as_of,
                "total_cases": tract.total_cases,
                "new_cases": tract.new_cases,
                "forecast": [[d.date, d.new_cases, d.lower, d.upper] for d in tract.forecast],
                **({"history": list(tract.history)} if tract.history else {}),
                # beside "forecast", not inside its rows, so an older reader still loads it
                **(
                    {"intervals": _bands_to_json(tract.forecast)} if tract.forecast[0].bands else {}
                ),
            }
            for tract_id, tract in bundle.tracts.items()
        },
    }


def _bands_to_json(days: tuple[ForecastDay, ...]) -> dict[str, list[list[float]]]:
    """{"0.5": [[lower, upper] per day], "0.95": [...]} for a tract's forecast days."""
    levels = [level for level, _, _ in days[0].bands]
    return {
        str(level): [[day.bands[k][1], day.bands[k][2]] for day in days]
        for k, level in enumerate(levels)
    }


def _bands_from_json(
    raw: Any, horizon: int, tract_id: str
) -> list[tuple[tuple[float, float, float], ...]]:
    """Per forecast day, the (level, lower, upper) of every extra interval of a tract."""
    if not isinstance(raw, dict):
        raise ValueError(f"tract {tract_id} has intervals that are not an object")
    per_day: list[list[tuple[float, float, float]]] = [[] for _ in range(horizon)]
    for level in sorted(raw, key=float):
        bounds = raw[level]
        if len(bounds) != horizon:
            raise ValueError(f"tract {tract_id} has {len(bounds)} days of the {level} interval")
        for h, (lower, upper) in enumerate(bounds):
            per_day[h].append((float(level), _finite(lower), _finite(upper)))
    return [tuple(day) for day in per_day]


def _bundle_from_json(raw: dict[str, Any]) -> Bundle:
    if raw.get("format") != FORMAT:
        raise ValueError(f"unknown format {raw.get('format')!r}")
    horizon = raw["horizon"]
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    bundle_id = _text(raw, "bundle_id")
    model_version = _text(raw, "model_version")
    data_version = _text(raw, "data_version")
    if bundle_id != bundle_id_for(model_version, data_version):
        raise ValueError(f"bundle_id {bundle_id!r} does not match its model and data version")
    tracts = _table_from_json(raw["tracts"], horizon)
    if not tracts:
        raise ValueError("no tracts")
    return Bundle(
        bundle_id=bundle_id,
        model_version=model_version,
        data_version=data_version,
        as_of=_text(raw, "as_of"),
        created_at=_text(raw, "created_at"),
        horizon=horizon,
        tracts=tracts,
    )


def _table_from_json(rows: dict[str, Any], horizon: int) -> TractTable:
    """Every tract of a bundle's JSON, checked, into a TractTable."""
    count = len(rows)
    widest = max((len(raw.get("intervals") or ()) for raw in rows.values()), default=0)
    values = np.empty((count, horizon, 3))
    counts = np.empty((count, 2), dtype=np.int64)
    bounds = np.full((count, horizon, widest, 2), np.nan)
    # Distinct as_of days, runs of forecast dates and interval levels, numbered as first seen.
    as_of: dict[str, int] = {}
    dates: dict[tuple[str, ...], int] = {}
    levels: dict[tuple[float, ...], int] = {}
    which = np.empty((3, count), dtype=np.int64)
    history: list[tuple[int, ...]] = []
    for n, (tract_id, raw) in enumerate(rows.items()):
        tract = _tract_from_json(tract_id, raw, horizon)
        days = tract.forecast
        values[n] = [(day.new_cases, day.lower, day.upper) for day in days]
        counts[n] = tract.total_cases, tract.new_cases
        tract_levels = tuple(level for level, _, _ in days[0].bands)
        if tract_levels:
            bounds[n, :, : len(tract_levels)] = [[b[1:] for b in day.bands] for day in days]
        which[:, n] = (
            as_of.setdefault(tract.as_of, len(as_of)),
            dates.setdefault(tuple(day.date for day in days), len(dates)),
            levels.setdefault(tract_levels, len(levels)),
        )
        history.append(tract.history)
    ends = np.cumsum([len(counts_) for counts_ in history], dtype=np.int64)
    every_count = np.fromiter(
        (value for counts_ in history for value in counts_),
        dtype=np.int64,
        count=int(ends[-1]) if count else 0,
    )
    return TractTable(
        ids=np.array(list(rows), dtype=str),
        as_of=(np.array(list(as_of), dtype=str), which[0]),
        counts=counts,
        dates=(np.array(list(dates), dtype=str).reshape(len(dates), horizon), which[1]),
        values=values,
        bands=(list(levels), which[2], bounds),
        history=(every_count, ends),
    )


def _tract_from_json(tract_id: str, raw: dict[str, Any], horizon: int) -> TractForecast:
    days = raw["forecast"]
    if len(days) != horizon:
        raise ValueError(f"tract {tract_id} has {len(days)} forecast days, expected {horizon}")
    bands = _bands_from_json(raw.get("intervals", {}), horizon, tract_id)
    forecast = tuple(
        ForecastDay(str(d), _finite(n), _finite(lo), _finite(hi), extra)
        for (d, n, lo, hi), extra in zip(days, bands, strict=True)
    )
    return TractForecast(
        tract_id=tract_id,
        as_of=str(raw["as_of"]),
        total_cases=_count(raw["total_cases"], tract_id),
        new_cases=_count(raw["new_cases"], tract_id),
        forecast=forecast,
        history=_history(raw.get("history", ()), tract_id),
    )


def _history(values: Any, tract_id: str) -> tuple[int, ...]:
    # One check over the whole list: bundles of thousands of tracts hold ~120 counts each.
    if not isinstance(values, list | tuple) or not all(type(v) is int for v in values):
        raise ValueError(f"tract {tract_id} has a history that is not a list of integer counts")
    return tuple(values)


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"non-finite number {value!r}")
    return number


def _count(value: Any, tract_id: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"tract {tract_id} has a non-integer count {value!r}")
    return value


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value
