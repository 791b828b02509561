"""Serving bundles: every tract's latest counts and forecast, made once, read by the API.

Format 2 (written by default) keeps the tracts in arrays: `bundle.json` holds the bundle's
fields, its interval levels and where each array of a TractTable starts in `tracts.bin` (the
arrays as `.npy` records, one after the other), and `bundle.sha256` lists both files' SHA-256.
Loading maps the arrays read-only from the file (a few header reads, no parse); their pages stay
in the page cache, shared by every worker that serves the bundle. Bundles are immutable (written
to a temp dir, renamed, sealed read-only), so a mapping never sees its file change; a removed
directory stays readable until the last bundle using it is gone. Format 1, one JSON document
for everything, still loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import mmap
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tractcast.errors import InvalidInput, Unavailable

BUNDLE_FILE = "bundle.json"  # format 1: the whole bundle; format 2: its fields, without tracts
CHECKSUM_FILE = "bundle.sha256"  # format 1: bundle.json's digest; 2: "digest  file" per line
ARRAYS_FILE = "tracts.bin"  # format 2: the tracts' arrays
FORMAT = 2  # what write_bundle writes; load_bundle reads 1 and 2
# Format 2's arrays, in tracts.bin in this order: TractTable's, in its constructor's order.
ARRAYS = (
    "ids", "as_of_days", "as_of_which", "counts", "dates", "dates_which", "values",
    "levels_which", "bounds", "history", "history_ends",
)  # fmt: skip
ALIGN = 64  # each array's record starts at a multiple of it, so its numbers are aligned
CHECK_ROWS = 8192  # tracts checked at a time when a bundle loads, to keep temporaries small
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
    Python object per tract is kept but the look-up's dict (`bench.census` measures it). Loaded
    from a format 2 bundle, the arrays are read-only views of the file's pages.
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
        if self._positions is None:  # made on first use (after a format 1 bundle's JSON is gone)
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

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays, by their format 2 names (ARRAYS)."""
        return dict(
            zip(
                ARRAYS,
                (self._ids, *self._as_of, self._counts, *self._dates, self._values,
                 *self._bands[1:], *self._history),
                strict=True,
            )
        )  # fmt: skip

    def levels(self) -> list[tuple[float, ...]]:
        """The distinct sets of extra interval levels, which `levels_which` numbers."""
        return list(self._bands[0])

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, tract_id: object) -> bool:
        return self._position(tract_id) is not None


def bundle_id_for(model_version: str, data_version: str) -> str:
    """The id of the bundle a model version makes from a data version."""
    return f"{model_version}@{data_version}"


def write_bundle(bundle: Bundle, directory: Path, *, bundle_format: int = FORMAT) -> None:
    """Write a bundle's files and their SHA-256 checksums into directory (which must not exist
    yet): format 2's arrays by default, or format 1's bundle.json."""
    if bundle_format == 1:
        files = {BUNDLE_FILE: _json_bytes(_bundle_to_json(bundle), bundle.bundle_id)}
    elif bundle_format == 2:
        files = _array_files(bundle)
    else:
        raise InvalidInput(f"unknown bundle format {bundle_format!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=False)
    for file_name, data in files.items():
        _write_synced(directory / file_name, data)
    digests = {file_name: hashlib.sha256(data).hexdigest() for file_name, data in files.items()}
    if bundle_format == 1:
        listing = digests[BUNDLE_FILE] + "\n"
    else:
        listing = "".join(f"{digest}  {file_name}\n" for file_name, digest in digests.items())
    _write_synced(directory / CHECKSUM_FILE, listing.encode())


def load_bundle(directory: Path) -> Bundle:
    """Read and verify a bundle; a missing, truncated or tampered bundle raises Unavailable."""
    directory = Path(directory)
    name = directory.name
    try:
        data = (directory / BUNDLE_FILE).read_bytes()
        digests = _read_checksums((directory / CHECKSUM_FILE).read_text())
    except OSError as exc:
        raise Unavailable(f"bundle {name} is corrupt: {exc.strerror or 'unreadable'}") from exc
    if hashlib.sha256(data).hexdigest() != digests.get(BUNDLE_FILE):
        raise Unavailable(f"bundle {name} is corrupt: checksum mismatch")
    try:
        raw = json.loads(data)
        if isinstance(raw, dict) and raw.get("format") == 2:
            return _bundle_from_arrays(raw, directory, digests)
        return _bundle_from_json(raw)
    except OSError as exc:
        raise Unavailable(f"bundle {name} is corrupt: {exc.strerror or 'unreadable'}") from exc
    except _Mismatch as exc:
        raise Unavailable(f"bundle {name} is corrupt: checksum mismatch in {exc}") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise Unavailable(f"bundle {name} is corrupt: {_reason(exc)}") from exc


class _Mismatch(Exception):
    """An array file whose content differs from its checksum (the file's name)."""


def _read_checksums(text: str) -> dict[str, str]:
    """{file name: hex digest} from bundle.sha256: one digest (format 1) or "digest  name" lines."""
    lines = text.split()
    if len(lines) == 1:
        return {BUNDLE_FILE: lines[0]}
    return dict(zip(lines[1::2], lines[0::2], strict=False))


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _bundle_header(bundle: Bundle, bundle_format: int) -> dict[str, Any]:
    """What bundle.json says of the bundle itself, in either format (its tracts follow)."""
    return {
        "format": bundle_format,
        "bundle_id": bundle.bundle_id,
        "model_version": bundle.model_version,
        "data_version": bundle.data_version,
        "as_of": bundle.as_of,
        "created_at": bundle.created_at,
        "horizon": bundle.horizon,
    }


def _bundle_to_json(bundle: Bundle) -> dict[str, Any]:
    return {
        **_bundle_header(bundle, 1),
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
    if raw.get("format") != 1:
        raise ValueError(f"unknown format {raw.get('format')!r}")
    horizon = _horizon(raw)
    return _with_fields(raw, _table_from_json(raw["tracts"], horizon))


def _horizon(raw: dict[str, Any]) -> int:
    horizon = raw["horizon"]
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    return horizon


def _with_fields(raw: dict[str, Any], tracts: TractTable) -> Bundle:
    """The bundle of a header (format 1: the whole document) and its tracts, checked."""
    bundle_id = _text(raw, "bundle_id")
    model_version = _text(raw, "model_version")
    data_version = _text(raw, "data_version")
    if bundle_id != bundle_id_for(model_version, data_version):
        raise ValueError(f"bundle_id {bundle_id!r} does not match its model and data version")
    if not tracts:
        raise ValueError("no tracts")
    return Bundle(
        bundle_id=bundle_id,
        model_version=model_version,
        data_version=data_version,
        as_of=_text(raw, "as_of"),
        created_at=_text(raw, "created_at"),
        horizon=_horizon(raw),
        tracts=tracts,
    )


def _table_from_json(rows: dict[str, Any], horizon: int) -> TractTable:
    """Every tract of a bundle's JSON, checked, into a TractTable."""
    return _table_of(
        ((tract_id, _tract_from_json(tract_id, raw, horizon)) for tract_id, raw in rows.items()),
        horizon,
        len(rows),
    )


def _table_of(tracts: Iterable[tuple[str, TractForecast]], horizon: int, count: int) -> TractTable:
    """The TractTable of `count` tracts, each with `horizon` forecast days (ValueError if not)."""
    values = np.empty((count, horizon, 3))
    counts = np.empty((count, 2), dtype=np.int64)
    bounds = np.full((count, horizon, 0, 2), np.nan)  # widened when a tract has more intervals
    # Distinct as_of days, runs of forecast dates and interval levels, numbered as first seen.
    as_of: dict[str, int] = {}
    dates: dict[tuple[str, ...], int] = {}
    levels: dict[tuple[float, ...], int] = {}
    which = np.empty((3, count), dtype=np.int64)
    history: list[tuple[int, ...]] = []
    ids: list[str] = []
    for n, (tract_id, tract) in enumerate(tracts):
        days = tract.forecast
        if len(days) != horizon:
            raise ValueError(f"tract {tract_id} has {len(days)} forecast days, expected {horizon}")
        values[n] = [(day.new_cases, day.lower, day.upper) for day in days]
        counts[n] = tract.total_cases, tract.new_cases
        tract_levels = tuple(level for level, _, _ in days[0].bands)
        if len(tract_levels) > bounds.shape[2]:
            wider = np.full((count, horizon, len(tract_levels), 2), np.nan)
            wider[:, :, : bounds.shape[2]] = bounds
            bounds = wider
        if tract_levels:
            bounds[n, :, : len(tract_levels)] = [[b[1:] for b in day.bands] for day in days]
        which[:, n] = (
            as_of.setdefault(tract.as_of, len(as_of)),
            dates.setdefault(tuple(day.date for day in days), len(dates)),
            levels.setdefault(tract_levels, len(levels)),
        )
        history.append(tract.history)
        ids.append(tract_id)
    if len(ids) != count:
        raise ValueError(f"{len(ids)} tracts, expected {count}")
    ends = np.cumsum([len(counts_) for counts_ in history], dtype=np.int64)
    every_count = np.fromiter(
        (value for counts_ in history for value in counts_),
        dtype=np.int64,
        count=int(ends[-1]) if count else 0,
    )
    return TractTable(
        ids=np.array(ids, dtype=str),
        as_of=(np.array(list(as_of), dtype=str), which[0]),
        counts=counts,
        dates=(np.array(list(dates), dtype=str).reshape(len(dates), horizon), which[1]),
        values=values,
        bands=(list(levels), which[2], bounds),
        history=(every_count, ends),
    )


def _json_bytes(document: dict[str, Any], bundle_id: str) -> bytes:
    try:
        return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        raise InvalidInput(f"bundle {bundle_id} has a non-finite number") from exc


def _array_files(bundle: Bundle) -> dict[str, bytes]:
    """Format 2's files of a bundle: its header and its TractTable's arrays."""
    tracts = bundle.tracts
    try:
        if not isinstance(tracts, TractTable):
            tracts = _table_of(tracts.items(), bundle.horizon, len(tracts))
        _check_numbers(tracts)
    except ValueError as exc:
        raise InvalidInput(f"bundle {bundle.bundle_id} cannot be written: {exc}") from exc
    arrays = tracts.arrays()
    packed = io.BytesIO()
    offsets = {}
    for array_name in ARRAYS:
        packed.write(b"\0" * (-packed.tell() % ALIGN))
        offsets[array_name] = packed.tell()
        np.save(packed, _narrowest(arrays[array_name]), allow_pickle=False)
    header = {
        **_bundle_header(bundle, 2),
        "tracts": len(tracts),
        "levels": [list(level_set) for level_set in tracts.levels()],
        "arrays": offsets,
    }
    return {BUNDLE_FILE: _json_bytes(header, bundle.bundle_id), ARRAYS_FILE: packed.getvalue()}


def _narrowest(array: np.ndarray) -> np.ndarray:
    """Integers in the narrowest type that holds them (history counts fit 16 bits or fewer)."""
    if array.dtype.kind not in "iu" or array.size == 0:
        return array
    low, high = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.uint16, np.int16, np.int32):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return array.astype(dtype)
    return array


def _bundle_from_arrays(raw: dict[str, Any], directory: Path, digests: dict[str, str]) -> Bundle:
    """A format 2 bundle: its header's fields and its arrays, mapped from tracts.bin."""
    horizon = _horizon(raw)
    count = raw["tracts"]
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"tracts must be a positive integer, got {count!r}")
    level_sets = [tuple(_finite(level) for level in level_set) for level_set in raw["levels"]]
    mapped, arrays = _mapped(directory / ARRAYS_FILE, digests, raw["arrays"])
    _check_shapes(arrays, count, horizon, level_sets)
    table = TractTable(
        ids=arrays["ids"],
        as_of=(arrays["as_of_days"], arrays["as_of_which"]),
        counts=arrays["counts"],
        dates=(arrays["dates"], arrays["dates_which"]),
        values=arrays["values"],
        bands=(level_sets, arrays["levels_which"], arrays["bounds"]),
        history=(arrays["history"], arrays["history_ends"]),
    )
    _check_numbers(table)
    mapped.madvise(mmap.MADV_DONTNEED)  # the checks read every number: leave it to the cache
    return _with_fields(raw, table)


def _mapped(
    path: Path, digests: dict[str, str], offsets: dict[str, Any]
) -> tuple[mmap.mmap, dict[str, np.ndarray]]:
    """The arrays of a tracts.bin that matches its checksum, mapped read-only (never
    unpickled), each within its record."""
    if path.name not in digests:
        raise ValueError(f"no checksum for {path.name}")
    starts = [offsets[array_name] for array_name in ARRAYS]
    if not all(type(start) is int for start in starts) or starts != sorted(set(starts)):
        raise ValueError("arrays must start at increasing offsets")
    arrays = {}
    with open(path, "rb") as handle:
        if hashlib.file_digest(handle, "sha256").hexdigest() != digests[path.name]:
            raise _Mismatch(path.name)
        ends = [*starts[1:], handle.tell()]
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        for array_name, start, end in zip(ARRAYS, starts, ends, strict=True):
            handle.seek(start)
            major, _ = np.lib.format.read_magic(handle)
            if major not in (1, 2):
                raise ValueError(f"{array_name} has .npy version {major}")
            read_header = np.lib.format.read_array_header_1_0
            if major == 2:
                read_header = np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read_header(handle)
            if dtype.hasobject or fortran_order:
                raise ValueError(f"{array_name} holds {dtype} in an unexpected layout")
            size, offset = math.prod(shape), handle.tell()
            if offset + size * dtype.itemsize > end:
                raise ValueError(f"{array_name} runs past its record")
            arrays[array_name] = np.frombuffer(mapped, dtype, size, offset).reshape(shape)
    return mapped, arrays


def _check_shapes(
    arrays: dict[str, np.ndarray], count: int, horizon: int, level_sets: list[tuple[float, ...]]
) -> None:
    """Every array of the right kind and shape, every index within what it points into."""
    widest = max((len(level_set) for level_set in level_sets), default=0)
    shapes: dict[str, tuple[str, tuple[int | None, ...]]] = {
        "ids": ("U", (count,)),
        "as_of_days": ("U", (None,)),
        "as_of_which": ("iu", (count,)),
        "counts": ("iu", (count, 2)),
        "dates": ("U", (None, horizon)),
        "dates_which": ("iu", (count,)),
        "values": ("f", (count, horizon, 3)),
        "levels_which": ("iu", (count,)),
        "bounds": ("f", (count, horizon, widest, 2)),
        "history": ("iu", (None,)),
        "history_ends": ("iu", (count,)),
    }
    for array_name, (kinds, shape) in shapes.items():
        array = arrays[array_name]
        if (
            array.dtype.kind not in kinds
            or len(array.shape) != len(shape)
            or any(
                want is not None and got != want
                for got, want in zip(array.shape, shape, strict=True)
            )
        ):
            raise ValueError(f"{array_name} is {array.dtype}{list(array.shape)}, not as expected")
    for which, target in (
        ("as_of_which", len(arrays["as_of_days"])),
        ("dates_which", len(arrays["dates"])),
        ("levels_which", len(level_sets)),
    ):
        if int(arrays[which].min()) < 0 or int(arrays[which].max()) >= target:
            raise ValueError(f"{which} points outside its {target} entries")
    ends = arrays["history_ends"].astype(np.int64)
    if int(ends[0]) < 0 or (np.diff(ends) < 0).any() or int(ends[-1]) != len(arrays["history"]):
        raise ValueError("history_ends do not split the history")
    ids = np.sort(arrays["ids"])
    if (ids[1:] == ids[:-1]).any():
        raise ValueError("a tract id appears twice")


def _check_numbers(table: TractTable) -> None:
    """Every forecast number and used interval bound finite; a chunk of tracts at a time."""
    arrays = table.arrays()
    values, bounds, which = arrays["values"], arrays["bounds"], arrays["levels_which"]
    widths = np.array([len(level_set) for level_set in table.levels()], dtype=np.int64)
    column = np.arange(bounds.shape[2])[None, None, :, None]
    for start in range(0, len(values), CHECK_ROWS):
        rows = slice(start, start + CHECK_ROWS)
        used = column < widths[which[rows]][:, None, None, None]
        if not (np.isfinite(values[rows]).all() and (np.isfinite(bounds[rows]) | ~used).all()):
            raise ValueError("a non-finite number")


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
