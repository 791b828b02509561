"""The current time as text, one way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now(timespec: str = "seconds") -> str:
    """Now in UTC as ISO 8601 text with its offset ("2026-01-02T03:04:05+00:00").

    Seconds unless records are ordered by the text within a second: then pass a finer
    `timespec` ("milliseconds", "microseconds").
    """
    return datetime.now(UTC).isoformat(timespec=timespec)
