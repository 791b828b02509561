"""Ingestion of releases in the shapes real portals publish (invented numbers, real shapes).

Each layout asserts the chosen date source, value column, kind and every tract's total; the
traps (rates beside counts, update timestamps, age classes, several measures, a stopped feed)
assert what was set aside and why. See tests/data/corpus.py for the layouts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.data import corpus
from tests.data.corpus import EPIDEMIC, CorpusLayer

from tractcast.data.ingest import IngestResult, ingest_source
from tractcast.errors import DataRejected

FILE_DATE = "[date in file name]"


def final_totals(result: IngestResult) -> dict[str, float]:
    """Per tract the total cases on the series' last day."""
    last = result.series.sort_values("date").groupby("tract_id")["total_cases"].last()
    return {str(k): float(v) for k, v in last.items()}


CUMULATIVE = EPIDEMIC.final_totals()
DAILY = EPIDEMIC.daily_sums()

LAYOUTS: list[tuple[str, Callable[[Path], Path], str, str, str, dict[str, float]]] = [
    # id, writer, date column, value column, kind, totals per tract
    ("per_area_rates", corpus.per_area_with_rates, "date", "total_cases", "cumulative", CUMULATIVE),
    (
        "per_area_opaque_headers",
        lambda folder: corpus.per_area_with_rates(folder, opaque=True),
        "date", "c1", "cumulative", CUMULATIVE,
    ),
    (
        "per_day_update_times",
        corpus.per_day_with_update_times,
        FILE_DATE, "Confirmed", "cumulative", CUMULATIVE,
    ),
    ("long_name_region", corpus.long_by_name_and_region, "date", "cases", "cumulative", CUMULATIVE),
    (
        "wide_dashboard",
        corpus.wide_dashboard,
        "[column headers]", "[cells]", "cumulative", CUMULATIVE,
    ),
    ("age_rows_total", corpus.age_classes_with_total, "date", "new_cases", "daily", DAILY),
    (
        "age_rows_no_total",
        lambda folder: corpus.age_classes_with_total(folder, total_label=None),
        "date", "new_cases", "daily", DAILY,
    ),
    ("age_columns_total", corpus.age_columns_with_total, "date", "cases_total", "daily", DAILY),
    (
        "semicolon_decimal_comma",
        corpus.semicolon_decimal_comma,
        "Meldedatum", "AnzahlFall", "daily", DAILY,
    ),
    ("measures_side_by_side", corpus.measures_side_by_side, "report_date", "cases", "daily", DAILY),
    ("long_measures", corpus.long_measures, "date", "value", "daily", DAILY),
    (
        "neutral_cumulative_daily",
        corpus.neutral_cumulative_and_daily,
        "dt", "v_b", "cumulative", CUMULATIVE,
    ),
    ("neutral_windows", corpus.neutral_daily_with_windows, "d", "x2", "daily", DAILY),
    ("wide_by_tract", corpus.wide_by_tract, "Date", "[cells]", "daily", DAILY),
    (
        "regional_bulletin",
        corpus.regional_bulletin,
        "data", "totale_casi", "cumulative", CUMULATIVE,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("writer", "date_column", "value_column", "kind", "totals"),
    [pytest.param(*layout[1:], id=layout[0]) for layout in LAYOUTS],
)
def test_each_portal_layout_gives_the_right_columns_kind_and_totals(
    tmp_path, writer, date_column, value_column, kind, totals
):
    result = ingest_source(writer(tmp_path / "release"), CorpusLayer())
    report = result.report
    assert (report["date_column"], report["value_column"], report["value_kind"]) == (
        date_column,
        value_column,
        kind,
    )
    assert final_totals(result) == totals
    assert report["rows_quarantined"] == 0
    assert report["stale"]["stale"] is False


def test_counts_beside_per_million_rates_and_weekly_sums_keep_the_count(tmp_path):
    report = ingest_source(corpus.per_area_with_rates(tmp_path / "r"), CorpusLayer()).report
    set_aside = report["evidence"]["value"]["rejected"]
    assert "rate per population of 'total_cases'" in set_aside["total_cases_per_million"]
    assert "10^6" in set_aside["total_cases_per_million"]
    assert "7-day rolling sum" in set_aside["weekly_cases"]
    assert "daily differences of 'total_cases'" in set_aside["new_cases"]
    assert "another measure" in set_aside["total_deaths"]
    kinds = {(r["column"], r["kind"]) for r in report["evidence"]["value"]["relations"]}
    assert ("weekly_cases_per_million", "rate") in kinds


def test_opaque_headers_and_a_rate_rounded_to_whole_numbers_are_told_apart_by_population(
    tmp_path,
):
    """Per-million counts rounded to integers look like counts; the layer's population shows
    the factor between the two columns is 10^6 / population, tract by tract."""
    report = ingest_source(
        corpus.per_area_with_rates(tmp_path / "r", opaque=True), CorpusLayer()
    ).report
    assert report["value_column"] == "c1"
    assert "population" in report["evidence"]["value"]["rejected"]["c4"]


def test_opaque_headers_without_a_population_are_refused_naming_the_override(tmp_path):
    folder = corpus.per_area_with_rates(tmp_path / "r", opaque=True)
    with pytest.raises(DataRejected) as refused:
        ingest_source(folder, CorpusLayer(with_population=False))
    message = refused.value.message
    assert "'c1'" in message and "'c4'" in message
    assert "constant multiple" in message and "TRACTCAST_VALUE_COLUMN" in message


def test_an_override_settles_what_the_content_cannot(tmp_path):
    folder = corpus.per_area_with_rates(tmp_path / "r", opaque=True)
    result = ingest_source(folder, CorpusLayer(with_population=False), value_column="c1")
    assert final_totals(result) == CUMULATIVE


def test_update_timestamps_lose_to_the_date_in_the_file_name_and_the_gap_is_stated(tmp_path):
    result = ingest_source(corpus.per_day_with_update_times(tmp_path / "r"), CorpusLayer())
    date = result.report["evidence"]["date"]
    assert date["source"] == "report_date"
    assert date["roles"]["Last Update"]["role"] == "update_time"
    assert set(date["other_dates"]["Last Update"]["days_offset"]) == {"1"}  # next day in UTC
    assert "+1 days" in date["disagreement"]
    assert (
        result.report["headers"]["columns_renamed"]
        or result.report["headers"]["header_variants"] > 1
    )
    series = result.series
    assert series["date"].min().date() == corpus.START  # not shifted by the UTC update time
    unassigned = result.report["unmatched_keys"]
    assert {k: v["total"] for k, v in unassigned.items()} == {
        "90001": 3.0 + corpus.DAYS - 1,
        "90006": 3.0 + corpus.DAYS - 1,
    }


def test_fips_codes_without_leading_zeros_join_their_tracts(tmp_path):
    result = ingest_source(corpus.per_day_with_update_times(tmp_path / "r"), CorpusLayer())
    assert result.report["tract_column"] == "FIPS"
    assert result.report["tracts_matched"] == len(corpus.COUNTIES)


def test_tests_deaths_and_hospital_admissions_are_never_taken_for_cases(tmp_path):
    report = ingest_source(corpus.measures_side_by_side(tmp_path / "r"), CorpusLayer()).report
    set_aside = report["evidence"]["value"]["rejected"]
    assert set(set_aside) >= {"tests", "deaths", "hospital_admissions"}


def test_a_long_file_of_several_indicators_keeps_only_the_case_rows(tmp_path):
    report = ingest_source(corpus.long_measures(tmp_path / "r"), CorpusLayer()).report
    (category,) = report["evidence"]["categories"]
    assert (category["column"], category["kind"], category["kept"]) == (
        "indicator",
        "measures",
        ["confirmed cases"],
    )
    assert report["rows_filtered"] == 3 * corpus.DAYS * len(corpus.COUNTIES)


def test_age_rows_beside_a_total_row_are_counted_once(tmp_path):
    report = ingest_source(corpus.age_classes_with_total(tmp_path / "r"), CorpusLayer()).report
    (category,) = report["evidence"]["categories"]
    assert category["kept"] == ["all ages"]
    assert report["rows_filtered"] == len(corpus.AGE_GROUPS) * corpus.DAYS * len(corpus.COUNTIES)


def test_a_bulletin_of_hospital_tests_and_current_positives_keeps_the_case_count(tmp_path):
    report = ingest_source(corpus.regional_bulletin(tmp_path / "r"), CorpusLayer()).report
    set_aside = report["evidence"]["value"]["rejected"]
    assert "subset of 'totale_casi'" in set_aside["totale_positivi"]
    assert "daily differences of 'totale_casi'" in set_aside["nuovi_positivi"]
    for other in ("totale_ospedalizzati", "tamponi", "casi_testati", "deceduti"):
        assert "another measure" in set_aside[other]


def test_two_unrelated_counts_with_silent_headers_are_refused(tmp_path):
    with pytest.raises(DataRejected, match="ambiguous value column.*'m1'.*TRACTCAST_VALUE_COLUMN"):
        ingest_source(corpus.two_unrelated_counts(tmp_path / "r"), CorpusLayer())


def test_a_feed_that_stops_while_files_keep_coming_ends_at_its_last_fresh_day(tmp_path):
    fresh = 24
    result = ingest_source(corpus.per_day_frozen_tail(tmp_path / "r", fresh), CorpusLayer())
    stale = result.report["stale"]
    assert stale["stale"] is True and stale["days"] == corpus.DAYS - fresh
    last_fresh = corpus.days()[fresh - 1]
    assert stale["last_fresh_day"] == f"{last_fresh}"
    assert stale["published_until"] == f"{corpus.days()[-1]}"
    assert result.series["date"].max().date() == last_fresh
    assert result.report["date_column"] == FILE_DATE
    expected = {
        c[0]: float(v)
        for c, v in zip(corpus.COUNTIES, EPIDEMIC.cumulative[:, fresh - 1], strict=True)
    }
    assert final_totals(result) == expected


def test_daily_cases_above_the_population_are_quarantined_with_a_reason(tmp_path):
    folder = corpus.measures_side_by_side(tmp_path / "r")
    path = folder / "indicators.csv"
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("2021-03-10,01001,"))
    parts = lines[row].split(",")
    parts[3] = "900000"  # Autauga has 55,869 inhabitants
    lines[row] = ",".join(parts)
    path.write_text("\n".join(lines) + "\n")
    result = ingest_source(folder, CorpusLayer())
    (entry,) = result.report["quarantine"]
    assert (entry["line"], entry["reason"]) == (row + 1, "implausible_value")
    assert "population 55869" in entry["detail"]


def test_a_national_total_jumping_by_an_order_of_magnitude_is_refused(tmp_path):
    folder = corpus.measures_side_by_side(tmp_path / "r")
    path = folder / "indicators.csv"
    lines = path.read_text().splitlines()
    scaled = []
    for line in lines:
        parts = line.split(",")
        if parts[0] == "2021-03-30" and parts[1] == "06037":
            parts[3] = str(int(parts[3]) * 1000)  # below LA's population, far above any day
        scaled.append(",".join(parts))
    path.write_text("\n".join(scaled) + "\n")
    with pytest.raises(DataRejected, match="implausible national total.*2021-03-30"):
        ingest_source(folder, CorpusLayer())


def test_relations_are_found_from_content_alone_whatever_the_headers():
    import pandas as pd

    from tractcast.data.relations import find_relations, value_grid

    days = pd.Series(pd.date_range("2021-01-01", periods=30).tolist() * 3)
    keys = pd.Series(np.repeat(["a", "b", "c"], 30))
    rng = np.random.default_rng(3)
    daily = rng.poisson(40, 90).astype(float)
    cumulative = np.concatenate([np.cumsum(daily[i * 30 : (i + 1) * 30]) for i in range(3)])
    per_100k = np.round(cumulative * np.repeat([1e5 / 2e5, 1e5 / 7e4, 1e5 / 1.3e6], 30), 1)
    grid = value_grid(
        days, keys, {"p": pd.Series(cumulative), "q": pd.Series(per_100k), "r": pd.Series(daily)}
    )
    found = {
        (r.column, r.source, r.kind)
        for r in find_relations(grid, {"p": "cumulative", "q": "cumulative", "r": "daily"})
    }
    assert ("r", "p", "difference") in found
    assert ("q", "p", "rate") in found or ("p", "q", "rate") in found


def test_a_date_column_whose_format_changes_between_files_loses_no_row(tmp_path):
    folder = corpus.per_day_frozen_tail(tmp_path / "r", fresh_days=corpus.DAYS)
    for i, path in enumerate(sorted(folder.iterdir())):
        day = corpus.days()[i]
        written = f"{day:%Y-%m-%d}" if i < 20 else f"{day.day}.{day.month}.{day:%Y} 00:00"
        header, *rows = path.read_text().splitlines()
        path.write_text("\n".join([f"{header},stand", *(f"{r},{written}" for r in rows)]) + "\n")
    result = ingest_source(folder, CorpusLayer())
    assert result.report["date_column"] == "stand"  # the date written in the files
    date = result.report["evidence"]["date"]
    assert {date["format"], *date["other_formats"]} == {"%Y-%m-%d", "%d.%m.%Y"}
    assert result.report["rows_quarantined"] == 0
    assert final_totals(result) == CUMULATIVE
