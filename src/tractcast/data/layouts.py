"""Many files -> one text table: archives expanded, headers reconciled, file names as columns.

Drift between files (columns added, removed, renamed or reordered, header spellings) is resolved
here; what the file names say (a date per file, a tract per file) becomes a column that schema
inference judges like any other.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.reader import RawTable, decompress, parse_table
from tractcast.data.schema.parsing import (
    best_date_format,
    normalise_keys,
    parse_counts,
    parse_dates,
)
from tractcast.data.schema.results import FILE_DATE
from tractcast.data.sources.base import snapshot_version
from tractcast.errors import DataRejected

FILE_KEY = "[file name]"
_DATE_TOKENS = (
    (re.compile(r"(?<!\d)(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})(?!\d)"), ("%Y", "%m", "%d")),
    (re.compile(r"(?<!\d)(\d{2})[-_.](\d{2})[-_.](\d{4})(?!\d)"), ("%d", "%m", "%Y")),
)
_SEPARATOR = re.compile(r"[^0-9A-Za-z]")
_DATA_EXTENSIONS = re.compile(r"(\.(csv|tsv|tab|txt|psv|dat))?(\.(gz|zip))?$", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class Table:
    """Every cell of every file as text, columns reconciled; per row its file and line."""

    frame: pd.DataFrame
    files: np.ndarray  # index into `names`, per row
    lines: np.ndarray
    names: tuple[str, ...]
    bad_lines: tuple[tuple[str, int, str], ...] = ()
    blank_lines: tuple[tuple[str, int], ...] = ()
    formats: dict[str, Any] = field(default_factory=dict)  # encodings and delimiters seen
    headers: dict[str, Any] = field(default_factory=dict)  # drift evidence

    @property
    def rows_read(self) -> int:
        return int(len(self.frame) + len(self.bad_lines) + len(self.blank_lines))

    def file_of(self, rows: np.ndarray) -> np.ndarray:
        """File names of some rows (by position)."""
        return np.asarray(self.names, dtype=object)[self.files[rows]]


# --- reading -----------------------------------------------------------------------------------


def expand_archive(name: str, raw: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of the tables inside: gzip is unpacked, zip gives one entry per member."""
    if raw[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                members = [
                    info
                    for info in archive.infolist()
                    if not info.is_dir()
                    and not info.filename.startswith("__MACOSX/")
                    and not PurePosixPath(info.filename).name.startswith(".")
                ]
                unpacked = [(f"{name}/{m.filename}", archive.read(m)) for m in members]
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise DataRejected(f"{name}: the zip archive cannot be read: {exc}") from exc
        if not unpacked:
            raise DataRejected(f"{name}: the zip archive holds no file")
        return [item for member, data in unpacked for item in expand_archive(member, data)]
    if raw[:2] == b"\x1f\x8b":
        try:
            return [(re.sub(r"\.gz$", "", name, flags=re.IGNORECASE), decompress(raw))]
        except DataRejected as exc:
            raise DataRejected(f"{name}: {exc.message}") from exc
    return [(name, raw)]


def read_tables(files: dict[str, Path]) -> tuple[list[RawTable], list[str], str]:
    """Parse every file (archives expanded); return the tables, their names and the data version.

    A file that cannot be understood refuses the whole release, naming the file.
    """
    tables, names, hashes = [], [], {}
    for name, path in files.items():
        raw = Path(path).read_bytes()
        hashes[name] = hashlib.sha256(raw).hexdigest()
        for member, data in expand_archive(name, raw):
            try:
                tables.append(parse_table(data))
            except DataRejected as exc:
                raise DataRejected(f"{member}: {exc.message}") from exc
            names.append(member)
    return tables, names, snapshot_version(hashes)


# --- headers -----------------------------------------------------------------------------------


def canonical_header(name: object) -> str:
    """Header text compared across files: accents, case, spaces and punctuation ignored."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]+", "_", text.casefold()).strip("_") or str(name)


@dataclass(frozen=True)
class ColumnProfile:
    kind: str  # "date", "integer", "number", "text" or "empty"
    keys: frozenset[str]
    positions: frozenset[int]
    files: tuple[int, int] = (0, 0)  # first and last file holding the column
    medians: tuple[float, float] = (0.0, 0.0)  # in the first and the last of those files


def column_profile(
    frames: list[pd.DataFrame], column: str, presence: set[int], positions: set[int]
) -> ColumnProfile:
    """What a column holds, from a sample of its non-empty cells."""
    files = (min(presence), max(presence))
    text = clean_cells(sample_column(frames, column))
    if text.empty:
        return ColumnProfile("empty", frozenset(), frozenset(positions), files)
    keys = frozenset(normalise_keys(text).unique())
    if best_date_format(text)[1] >= 0.8:
        return ColumnProfile("date", keys, frozenset(positions), files)
    numbers = parse_counts(text)
    if numbers.notna().mean() < 0.9:
        return ColumnProfile("text", keys, frozenset(positions), files)
    valid = numbers.dropna()
    integer = bool((valid == np.round(valid)).mean() >= 0.9)
    first, last = (
        float(parse_counts(clean_cells(frames[i][column])).abs().median()) for i in files
    )
    return ColumnProfile(
        "integer" if integer else "number", keys, frozenset(positions), files, (first, last)
    )


def clean_cells(values: pd.Series) -> pd.Series:
    text = values.astype(object).str.strip()
    return text[text != ""]


def same_content(a: ColumnProfile, b: ColumnProfile) -> float:
    """How likely two columns are one column renamed (0 when they cannot be)."""
    if a.kind != b.kind or a.kind == "empty":
        return 0.0
    same_place = bool(a.positions & b.positions)
    if a.kind == "text":
        overlap = len(a.keys & b.keys) / max(min(len(a.keys), len(b.keys)), 1)
        return overlap + 0.1 * same_place if overlap >= 0.5 else 0.0
    if a.kind == "date":
        return 1.0 if same_place else 0.0
    earlier, later = sorted((a, b), key=lambda p: p.files)
    if earlier.files[1] < later.files[0]:  # one replaced the other: values continue
        low, high = sorted((earlier.medians[1], later.medians[0]))
        factor = 3.0
    else:
        low, high = sorted((a.medians[0], b.medians[0]))
        factor = 10.0
    return 0.5 + 0.3 * same_place if high <= factor * max(low, 1.0) else 0.0


def sample_column(tables: list[pd.DataFrame], column: str, per_table: int = 40) -> pd.Series:
    """Cells of one column from up to five of the tables holding it (first, middle, last)."""
    holding = [t for t in tables if column in t.columns]
    picks = sorted(
        {0, len(holding) // 4, len(holding) // 2, 3 * len(holding) // 4, len(holding) - 1}
    )
    parts = []
    for i in picks:
        frame = holding[i]
        step = max(len(frame) // per_table, 1)
        parts.append(frame[column].iloc[::step].head(per_table))
    return pd.concat(parts, ignore_index=True) if parts else pd.Series([], dtype=object)


def find_renames(frames: list[pd.DataFrame]) -> dict[str, str]:
    """Columns that never appear in the same file and hold the same content: old -> new name.

    The name in the most recent file wins; columns whose header is a date (wide layouts) are
    never merged.
    """
    presence: dict[str, set[int]] = {}
    positions: dict[str, set[int]] = {}
    for i, frame in enumerate(frames):
        for position, column in enumerate(frame.columns):
            presence.setdefault(column, set()).add(i)
            positions.setdefault(column, set()).add(position)
    partial = [c for c, files in presence.items() if len(files) < len(frames)]
    if len(partial) < 2:
        return {}
    headers = pd.Series(partial, dtype=object)
    partial = [c for c, is_date in zip(partial, dated_headers(headers), strict=True) if not is_date]
    profiles = {c: column_profile(frames, c, presence[c], positions[c]) for c in partial}
    pairs = []
    for i, a in enumerate(partial):
        for b in partial[i + 1 :]:
            if presence[a] & presence[b]:
                continue
            score = same_content(profiles[a], profiles[b])
            if score > 0:
                pairs.append((score, a, b))
    group_of = {c: c for c in partial}
    members: dict[str, set[str]] = {c: {c} for c in partial}
    for _, a, b in sorted(pairs, key=lambda p: p[0], reverse=True):
        ga, gb = group_of[a], group_of[b]
        if ga == gb:
            continue
        files_a = set().union(*(presence[c] for c in members[ga]))
        files_b = set().union(*(presence[c] for c in members[gb]))
        if files_a & files_b:
            continue
        members[ga] |= members.pop(gb)
        for column in members[ga]:
            group_of[column] = ga
    renames = {}
    for group in members.values():
        if len(group) > 1:
            newest = max(group, key=lambda c: max(presence[c]))
            renames.update({c: newest for c in group if c != newest})
    return renames


def dated_headers(headers: pd.Series) -> np.ndarray:
    """Which headers parse as dates with the format most of them use."""
    fmt, share = best_date_format(headers)
    if share == 0:
        return np.zeros(len(headers), dtype=bool)
    return parse_dates(headers, fmt).notna().to_numpy()


# --- file names --------------------------------------------------------------------------------


def stem(name: str) -> str:
    """A file name without its data extensions (.csv, .csv.gz, .zip ...)."""
    return _DATA_EXTENSIONS.sub("", name)


def date_in_name(name: str, day_first: bool = True) -> str:
    """The last date written in a file name, as YYYY-MM-DD ("" when none).

    Names like 03-01-2021 are read day first unless `day_first` is False (month first).
    """
    base = stem(name)
    found = ""
    for pattern, order in _DATE_TOKENS:
        if not day_first and order[0] == "%d":
            order = ("%m", "%d", "%Y")
        for match in pattern.finditer(base):
            parts = dict(zip(order, match.groups(), strict=True))
            try:
                day = pd.Timestamp(
                    year=int(parts["%Y"]), month=int(parts["%m"]), day=int(parts["%d"])
                )
            except ValueError:
                continue
            if 1900 <= day.year <= 2100:
                found = f"{day:%Y-%m-%d}"
    return found


def dates_in_names(names: list[str]) -> list[str]:
    """The date of every file name, day-first or month-first, whichever reads more names and,
    among equals, lays the files on the fewest distinct months (a daily series is contiguous)."""
    readings = [[date_in_name(n, day_first) for n in names] for day_first in (True, False)]

    def score(dates: list[str]) -> tuple[int, int]:
        found = [d for d in dates if d]
        return len(found), -len({d[:7] for d in found})

    return max(readings, key=score)  # ties: day first (the earlier reading)


def varying_parts(names: list[str]) -> list[str]:
    """What differs between file names: common leading and trailing words removed."""
    stems = [stem(n) for n in names]
    prefix = os.path.commonprefix(stems)
    suffix = os.path.commonprefix([s[::-1] for s in stems])[::-1]
    cut_start = max((m.end() for m in _SEPARATOR.finditer(prefix)), default=0)
    cut_end = min((m.start() for m in _SEPARATOR.finditer(suffix)), default=len(suffix))
    keep_end = len(suffix) - cut_end
    shortest = min(len(s) for s in stems)
    if cut_start + keep_end > shortest:
        cut_start, keep_end = 0, 0
    return [s[cut_start : len(s) - keep_end] for s in stems]


def name_columns(names: list[str]) -> dict[str, list[str]]:
    """Columns read from file names: the date in each name, and (several files) the varying part."""
    columns: dict[str, list[str]] = {}
    dates = dates_in_names(names)
    if any(dates):
        columns[FILE_DATE] = dates
    if len(names) > 1:
        parts = varying_parts(names)
        if not all(date_in_name(p) for p in parts) and len(set(parts)) > 1:
            columns[FILE_KEY] = parts
    return columns


# --- combining ---------------------------------------------------------------------------------


def combine_tables(tables: list[RawTable], names: list[str]) -> Table:
    """One text table from many: columns matched by canonical header, renames merged."""
    spelled: dict[str, Counter[str]] = {}
    frames = []
    for table in tables:
        canonical = [canonical_header(c) for c in table.frame.columns]
        for original, name in zip(table.frame.columns, canonical, strict=True):
            spelled.setdefault(name, Counter())[str(original)] += 1
        frame = table.frame.copy(deep=False)
        frame.columns = dedupe(canonical)
        frames.append(frame)
    raw_signatures = Counter(tuple(t.frame.columns) for t in tables)
    signatures = Counter(tuple(f.columns) for f in frames)
    renames = find_renames(frames) if len(signatures) > 1 else {}
    if renames:
        frames = [f.rename(columns=renames) for f in frames]
    display = {name: counts.most_common(1)[0][0] for name, counts in spelled.items()}
    frame = concat_text(frames)
    frame.columns = [display.get(c, c) for c in frame.columns]
    counts = np.array([len(t.frame) for t in tables], dtype=np.int64)
    files = np.repeat(np.arange(len(tables), dtype=np.int32), counts)
    for column, values in name_columns(names).items():
        frame[column] = pd.Series(np.repeat(np.array(values, dtype=object), counts), dtype=object)
    lines = np.concatenate([t.lines for t in tables]) if tables else np.zeros(0, dtype=np.int64)
    return Table(
        frame=frame,
        files=files,
        lines=lines,
        names=tuple(names),
        bad_lines=tuple(
            (name, line, detail)
            for name, table in zip(names, tables, strict=True)
            for line, detail in table.bad_lines
        ),
        blank_lines=tuple(
            (name, line)
            for name, table in zip(names, tables, strict=True)
            for line in table.blank_lines
        ),
        formats={
            "encodings": dict(Counter(t.encoding for t in tables)),
            "delimiters": dict(Counter(t.delimiter for t in tables)),
        },
        headers=drift_evidence(frames, renames, display, variants=len(raw_signatures)),
    )


def dedupe(columns: list[str]) -> list[str]:
    """Column names made unique within one file (a repeated name gets a numbered suffix)."""
    seen: Counter[str] = Counter()
    unique = []
    for column in columns:
        seen[column] += 1
        unique.append(column if seen[column] == 1 else f"{column}_{seen[column]}")
    return unique


def concat_text(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate text frames by column name; cells of absent columns become ""."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    if all(list(f.columns) == columns for f in frames):
        return pd.concat(frames, ignore_index=True)
    combined = pd.concat(frames, ignore_index=True, sort=False)[columns]
    return combined.fillna("")


def drift_evidence(
    frames: list[pd.DataFrame], renames: dict[str, str], display: dict[str, str], variants: int
) -> dict[str, Any]:
    """How the headers varied across files: variants as written, added, removed, renamed."""
    signatures = [tuple(f.columns) for f in frames]
    evidence: dict[str, Any] = {"files": len(frames), "header_variants": variants}
    if variants == 1:
        return evidence
    presence: dict[str, list[int]] = {}
    for i, columns in enumerate(signatures):
        for column in columns:
            presence.setdefault(column, []).append(i)
    n = len(frames)
    added = [display.get(c, c) for c, idx in presence.items() if idx[0] > 0 and idx[-1] == n - 1]
    removed = [display.get(c, c) for c, idx in presence.items() if idx[0] == 0 and idx[-1] < n - 1]
    evidence["columns_added"] = added[:50]
    evidence["columns_removed"] = removed[:50]
    evidence["columns_renamed"] = {
        display.get(old, old): display.get(new, new) for old, new in renames.items()
    }
    orders = {tuple(c for c in s if c in presence and len(presence[c]) == n) for s in signatures}
    evidence["columns_reordered"] = len(orders) > 1
    return evidence
