"""Raw source bytes -> a table of text cells: decompression, encoding, delimiter, bad lines."""

from __future__ import annotations

import csv
import gzip
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tractcast.errors import DataRejected

DELIMITERS = (",", ";", "\t", "|")
_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


@dataclass(frozen=True, eq=False)
class RawTable:
    """Every cell as text ("" when empty), with the file line each row came from."""

    frame: pd.DataFrame
    lines: np.ndarray
    encoding: str
    delimiter: str
    bad_lines: tuple[tuple[int, str], ...] = ()
    blank_lines: tuple[int, ...] = ()


def decompress(raw: bytes) -> bytes:
    """Gunzip the bytes when they carry the gzip magic number, else return them unchanged."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataRejected(f"the source looks gzip-compressed but cannot be read: {exc}") from exc


def decode_text(raw: bytes) -> tuple[str, str]:
    """Decode as UTF-8 (with or without BOM), falling back to Latin-1; return (text, encoding)."""
    bom = raw.startswith(b"\xef\xbb\xbf")
    body = raw[3:] if bom else raw
    try:
        return body.decode("utf-8"), "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError:
        return body.decode("latin-1"), "latin-1"


def reject_non_tables(text: str) -> None:
    """Raise DataRejected for empty text and for documents that are clearly not CSV."""
    head = text[:2048].lstrip().lower()
    if not head:
        raise DataRejected("the source is empty")
    if head.startswith(("<!doctype", "<html", "<?xml", "<head", "<body")) or "<html" in head:
        raise DataRejected("the source is an HTML/XML document, not a CSV table")
    if head.startswith(("{", "[")):
        raise DataRejected("the source is JSON, not a CSV table")


def sniff_delimiter(text: str, candidates: tuple[str, ...] = DELIMITERS) -> str:
    """Pick the delimiter that splits the first lines into the most, and most regular, fields."""
    lines = [line for line in text[:65536].splitlines()[:50] if line.strip()]
    best, best_score = "", 0.0
    for delimiter in candidates:
        counts = [len(row) - 1 for row in csv.reader(lines, delimiter=delimiter)]
        if not counts or counts[0] == 0:
            continue
        regular = sum(count == counts[0] for count in counts) / len(counts)
        score = counts[0] * regular
        if score > best_score:
            best, best_score = delimiter, score
    if not best:
        raise DataRejected("the source is not a delimited table (no , ; tab or | between fields)")
    return best


def parse_table(raw: bytes) -> RawTable:
    """Parse raw (possibly gzipped) CSV bytes into a text table; malformed lines are kept aside."""
    text, encoding = decode_text(decompress(raw))
    reject_non_tables(text)
    delimiter = sniff_delimiter(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pd.read_csv(
                io.StringIO(text),
                sep=delimiter,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                on_bad_lines="warn",
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataRejected(f"the source cannot be parsed as CSV: {exc}") from exc
    bad_lines = tuple(
        (int(match.group(1)), match.group(2).strip())
        for warning in caught
        for match in _BAD_LINE.finditer(str(warning.message))
    )
    frame.columns = [str(column).strip() for column in frame.columns]
    lines = row_lines(len(frame), [line for line, _ in bad_lines])
    blank = blank_rows(frame)
    return RawTable(
        frame=frame[~blank].reset_index(drop=True) if blank.any() else frame,
        lines=lines[~blank],
        encoding=encoding,
        delimiter=delimiter,
        bad_lines=bad_lines,
        blank_lines=tuple(int(line) for line in lines[blank]),
    )


def blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """Which rows are empty (or whitespace) in every cell."""
    blank = np.zeros(len(frame), dtype=bool)
    if frame.empty or not len(frame.columns):
        return blank
    candidates = (frame.iloc[:, 0].str.strip() == "").to_numpy()
    if not candidates.any():
        return blank
    subset = frame[candidates].astype(object)
    blank[candidates] = (subset.apply(lambda column: column.str.strip()) == "").all(axis=1)
    return blank


def row_lines(n_rows: int, skipped: list[int]) -> np.ndarray:
    """File line numbers of parsed rows: the header is line 1 and skipped lines hold no row."""
    candidates = np.arange(2, 2 + n_rows + len(skipped))
    return candidates[~np.isin(candidates, skipped)][:n_rows]
