"""utc_now: ISO 8601 text in UTC, at the precision asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tractcast.clock import utc_now


def test_utc_now_is_the_current_utc_time_to_the_second_by_default() -> None:
    text = utc_now()
    stamp = datetime.fromisoformat(text)
    assert text.endswith("+00:00") and stamp.microsecond == 0
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=5)


def test_finer_precisions_keep_order_within_a_second() -> None:
    assert len(utc_now("milliseconds")) == len("2026-01-02T03:04:05.678+00:00")
    stamps = [utc_now("microseconds") for _ in range(50)]
    assert stamps == sorted(stamps) and len(set(stamps)) > 1
