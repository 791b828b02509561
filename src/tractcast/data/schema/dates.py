"""The date column: which column, which format, report date over update timestamps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.schema.parsing import (
    best_date_format,
    has_time_of_day,
    other_date_formats,
    parse_dates,
    parse_dates_in,
    sample_rows,
)
from tractcast.data.schema.results import FILE_DATE, DateInference
from tractcast.errors import DataRejected


def header_dates(frame: pd.DataFrame) -> tuple[list[str], str, list[pd.Timestamp]]:
    """The columns whose header is a date, the format, and their dates."""
    headers = pd.Series([str(column) for column in frame.columns], dtype=object)
    fmt, share = best_date_format(headers)
    if share == 0:
        return [], fmt, []
    parsed = parse_dates(headers, fmt)
    ok = parsed.notna().to_numpy()
    return [c for c, hit in zip(frame.columns, ok, strict=True) if hit], fmt, list(parsed[ok])


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
