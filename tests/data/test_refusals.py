"""Releases that cannot be understood are refused with a clear error; bad rows are quarantined
with their file and line."""

from __future__ import annotations

import gzip
from datetime import date

import pytest

from tractcast.data.ingest import ingest_source
from tractcast.errors import DataRejected

from .conftest import DAILY_NAME, publish_days

DAYS = ["20200301", "20200302", "20200303"]
CASES = """\
date,code,cases
2026-11-20,001,10
2026-11-20,015,20
2026-11-21,001,12
2026-11-21,015,26
"""


def test_dates_after_tomorrow_are_refused(tmp_path, three_provinces):
    path = tmp_path / "cases.csv"
    path.write_text(CASES + "2026-12-24,001,15\n")
    with pytest.raises(DataRejected, match=r"dates in the future.*2026-12-24.*line 6"):
        ingest_source(path, three_provinces, today=date(2026, 11, 21))
    accepted = ingest_source(path, three_provinces, today=date(2026, 12, 23))
    assert accepted.report["end"] == "2026-12-24"


def test_a_truncated_gzip_is_refused(tmp_path, three_provinces):
    path = tmp_path / "cases.csv.gz"
    path.write_bytes(gzip.compress((CASES * 50).encode())[:-30])
    with pytest.raises(DataRejected, match="gzip"):
        ingest_source(path, three_provinces)


def test_an_html_page_among_daily_files_refuses_the_release_and_names_it(
    tmp_path, italy_days, italy_index
):
    folder = tmp_path / "portal"
    publish_days(folder, italy_days, DAYS)
    page = folder / DAILY_NAME.format(day="20200304")
    page.write_text("<html><head><title>503</title></head><body>try later</body></html>")
    with pytest.raises(DataRejected, match=f"{page.name}.*HTML"):
        ingest_source(folder, italy_index)


def test_an_empty_daily_file_refuses_the_release(tmp_path, italy_days, italy_index):
    folder = tmp_path / "portal"
    publish_days(folder, italy_days, DAYS)
    (folder / DAILY_NAME.format(day="20200304")).write_bytes(b"")
    with pytest.raises(DataRejected, match="20200304.*empty"):
        ingest_source(folder, italy_index)


def test_a_day_published_twice_with_other_values_is_refused(tmp_path, italy_days, italy_index):
    folder = tmp_path / "portal"
    publish_days(folder, italy_days, DAYS)
    rows = italy_days["20200303"].decode().splitlines()
    changed = [rows[0]] + [",".join([*r.split(",")[:9], "7", *r.split(",")[10:]]) for r in rows[1:]]
    (folder / "dpc-covid19-ita-province-20200303-bis.csv").write_text("\n".join(changed) + "\n")
    with pytest.raises(DataRejected, match="conflicting duplicate days: 2020-03-03"):
        ingest_source(folder, italy_index)


def test_a_day_published_twice_identically_is_collapsed(tmp_path, italy_days, italy_index):
    folder = tmp_path / "portal"
    publish_days(folder, italy_days, DAYS)
    (folder / "dpc-covid19-ita-province-latest.csv").write_bytes(italy_days[DAYS[-1]])
    result = ingest_source(folder, italy_index)
    assert result.report["duplicates_collapsed"] == 107
    assert result.report["rows_quarantined"] == 0


def test_malformed_rows_are_quarantined_with_file_line_and_reason(
    tmp_path, italy_days, italy_index
):
    folder = tmp_path / "portal"
    publish_days(folder, italy_days, DAYS)
    broken = folder / DAILY_NAME.format(day=DAYS[1])
    lines = broken.read_text().splitlines()
    lines[5] = lines[5].replace(",ITA,", ",ITA,extra,")  # one field too many
    lines[7] = lines[7].rsplit(",", 2)[0] + ",molti,"  # not a number
    broken.write_text("\n".join(lines) + "\n")
    report = ingest_source(folder, italy_index).report
    entries = [(q["file"], q["line"], q["reason"]) for q in report["quarantine"]]
    assert entries == [
        (broken.name, 6, "malformed_line"),
        (broken.name, 8, "non_numeric_value"),
    ]
    assert report["quarantine"][1]["detail"] == "molti"
    assert report["quarantine_reasons"] == {"malformed_line": 1, "non_numeric_value": 1}
    assert report["rows_read"] == 3 * 128
