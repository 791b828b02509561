"""Layouts and drift, on files derived from the real Italy data: every variant of the same days
must give the same series as the portal's own daily files."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from tractcast.data.ingest import IngestResult, ingest_source

from .conftest import DAILY_NAME, publish_days

DAYS = [f"202003{d:02d}" for d in range(1, 21)]  # 20 days, 11-column files
DRIFT_DAYS = [f"202101{d:02d}" for d in range(5, 25)]  # across the NUTS columns' arrival


def day_frame(italy_days: dict[str, bytes], days: list[str]) -> pd.DataFrame:
    """The rows of some daily files as one text frame."""
    frames = [
        pd.read_csv(io.BytesIO(italy_days[d]), dtype=str, keep_default_na=False) for d in days
    ]
    return pd.concat(frames, ignore_index=True).fillna("")


def totals(result: IngestResult) -> pd.DataFrame:
    """(tract_id, date) -> total_cases, for comparing series built from different layouts."""
    return result.series.set_index(["tract_id", "date"])["total_cases"].sort_index()


@pytest.fixture
def reference(tmp_path, italy_days, italy_index) -> IngestResult:
    """The portal's daily files of DAYS, ingested as published."""
    folder = tmp_path / "reference"
    publish_days(folder, italy_days, DAYS)
    return ingest_source(folder, italy_index)


def test_portal_daily_files_are_one_file_per_day(reference):
    report = reference.report
    assert (report["format"], report["files"], report["days"]) == ("file_per_day", 20, 20)
    assert (report["date_column"], report["value_column"]) == ("data", "totale_casi")
    assert report["tracts_matched"] == 107
    assert len(report["unmatched_keys"]) == 21  # one "to be assigned" row per region


def test_wide_file_with_one_column_per_date(tmp_path, italy_days, italy_index, reference):
    frame = day_frame(italy_days, DAYS)
    frame["day"] = pd.to_datetime(frame["data"].str[:10]).dt.strftime("%-m/%-d/%y")
    wide = frame.pivot_table(
        index=["codice_provincia", "denominazione_provincia", "lat", "long"],
        columns="day",
        values="totale_casi",
        aggfunc="first",
        sort=False,
    ).reset_index()
    path = tmp_path / "wide.csv"
    wide.to_csv(path, index=False)
    result = ingest_source(path, italy_index)
    report = result.report
    assert (report["format"], report["date_column"], report["value_column"]) == (
        "wide",
        "[column headers]",
        "[cells]",
    )
    assert (report["tract_column"], report["value_kind"], report["days"]) == (
        "codice_provincia",
        "cumulative",
        20,
    )
    assert report["evidence"]["date"]["format"] == "%m/%d/%y"
    pd.testing.assert_series_equal(totals(result), totals(reference))
    assert len(report["unmatched_keys"]) == 21


def test_wide_file_with_one_column_per_tract(tmp_path, italy_days, italy_index, reference):
    frame = day_frame(italy_days, DAYS)
    frame["area"] = frame["sigla_provincia"].where(
        frame["sigla_provincia"] != "", "NA-" + frame["codice_provincia"]
    )
    wide = frame.pivot(index="data", columns="area", values="totale_casi").reset_index()
    path = tmp_path / "by_tract.tsv"
    wide.to_csv(path, index=False, sep="\t")
    result = ingest_source(path, italy_index)
    report = result.report
    assert (report["format"], report["tract_column"], report["layer_property"]) == (
        "wide_by_tract",
        "[column headers]",
        "sigla_provincia",
    )
    assert report["date_column"] == "data" and report["delimiter"] == "\t"
    pd.testing.assert_series_equal(totals(result), totals(reference))
    assert len(report["unmatched_keys"]) == 21  # the unassigned columns are reported, not lost


def test_one_file_per_tract_takes_the_tract_from_the_file_name(
    tmp_path, italy_days, italy_index, reference
):
    frame = day_frame(italy_days, DAYS)
    folder = tmp_path / "per_tract"
    folder.mkdir()
    for code, rows in frame.groupby("codice_provincia"):
        out = rows.assign(giorno=rows["data"].str[:10])[["giorno", "totale_casi"]]
        out.to_csv(folder / f"casi_provincia_{code}.csv", index=False, sep=";")
    result = ingest_source(folder, italy_index)
    report = result.report
    assert (report["format"], report["tract_column"]) == ("file_per_tract", "[file name]")
    assert report["files"] == 128
    pd.testing.assert_series_equal(totals(result), totals(reference))


def test_one_file_per_day_takes_the_date_from_the_file_name(
    tmp_path, italy_days, italy_index, reference
):
    folder = tmp_path / "undated"
    folder.mkdir()
    for day in DAYS:
        frame = day_frame(italy_days, [day]).drop(columns=["data"])
        frame.to_csv(folder / f"casi-{day[:4]}-{day[4:6]}-{day[6:]}.csv", index=False)
    result = ingest_source(folder, italy_index)
    assert result.report["date_column"] == "[date in file name]"
    assert result.report["format"] == "file_per_day"
    pd.testing.assert_series_equal(totals(result), totals(reference))


def test_zip_and_gzip_archives_are_read(tmp_path, italy_days, italy_index, reference):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for day in DAYS[:10]:
            archive.writestr(f"dati-province/{DAILY_NAME.format(day=day)}", italy_days[day])
    folder = tmp_path / "archives"
    folder.mkdir()
    (folder / "first.zip").write_bytes(buffer.getvalue())
    for day in DAYS[10:]:
        name = DAILY_NAME.format(day=day) + ".gz"
        (folder / name).write_bytes(gzip.compress(italy_days[day]))
    result = ingest_source(folder, italy_index)
    assert result.report["files"] == 20
    pd.testing.assert_series_equal(totals(result), totals(reference))


def test_drifting_headers_encodings_and_ids_give_the_same_series(tmp_path, italy_days, italy_index):
    clean = tmp_path / "clean"
    publish_days(clean, italy_days, DRIFT_DAYS)
    expected = ingest_source(clean, italy_index)
    folder = tmp_path / "drift"
    folder.mkdir()
    for i, day in enumerate(DRIFT_DAYS):
        frame = day_frame(italy_days, [day])
        path = folder / DAILY_NAME.format(day=day)
        if i >= 14:  # renamed and moved to the front
            frame = frame.rename(columns={"totale_casi": "casi_totali"})
            frame = frame[["casi_totali", *[c for c in frame.columns if c != "casi_totali"]]]
        if i % 3 == 1:  # ids lose their leading zeros
            frame["codice_provincia"] = frame["codice_provincia"].str.lstrip("0")
        if i % 4 == 2:  # another spelling of the same headers
            frame.columns = [c.upper().replace("_", " ") for c in frame.columns]
        if i % 5 == 3:
            frame.to_csv(path, index=False, sep=";", encoding="latin-1")
        elif i % 5 == 4:
            frame.to_csv(path, index=False, encoding="utf-8-sig")
        else:
            frame.to_csv(path, index=False)
    result = ingest_source(folder, italy_index)
    headers = result.report["headers"]
    assert headers["header_variants"] > 3
    assert set(headers["columns_added"]) == {"codice_nuts_1", "codice_nuts_2", "codice_nuts_3"}
    assert {"totale_casi": "casi_totali"}.items() <= headers["columns_renamed"].items()
    assert result.report["file_formats"]["encodings"].keys() >= {"latin-1", "utf-8-sig"}
    assert result.report["value_column"] == "casi_totali"
    assert result.report["rows_quarantined"] == 0
    pd.testing.assert_series_equal(totals(result), totals(expected))


DECIMAL_COMMAS = """\
data;provincia;casi_totali;incidenza
01/03/2021;001;980;0,98
01/03/2021;015;1.999;2,5
01/03/2021;058;5;0,1
02/03/2021;001;1.001;1,01
02/03/2021;015;2.350;2,9
02/03/2021;058;7;0,1
03/03/2021;001;1.234;1,2
03/03/2021;015;2.999;3,7
03/03/2021;058;9;0,2
"""


def test_decimal_commas_and_dotted_thousands_are_read_as_numbers(tmp_path, three_provinces):
    path = tmp_path / "casi.csv"
    path.write_text(DECIMAL_COMMAS)
    result = ingest_source(path, three_provinces)
    assert result.report["value_column"] == "casi_totali"
    assert result.report["number_format"] == "decimal_comma"
    milano = result.series[result.series["tract_id"] == "015"]
    assert milano["total_cases"].tolist() == [1999, 2350, 2999]
    assert result.report["evidence"]["value"]["rejected"]["incidenza"] == "not a count column"


def test_coordinates_map_rows_to_tracts_through_the_geo_index(
    tmp_path, italy_days, italy_index, reference
):
    frame = day_frame(italy_days, DAYS).drop(
        columns=["codice_provincia", "sigla_provincia", "denominazione_provincia"]
    )
    path = tmp_path / "points.csv"
    frame.to_csv(path, index=False)
    result = ingest_source(path, italy_index)
    report = result.report
    assert report["tract_column"] == "lat,long"
    assert report["evidence"]["tract"]["method"] == "coordinates"
    assert report["tracts_matched"] == 107
    pd.testing.assert_series_equal(totals(result), totals(reference))
    assert report["rows_unmatched"] == 21 * 20  # the unassigned rows have no coordinates


def test_coordinate_columns_can_be_named_in_the_settings(tmp_path, italy_days, italy_index):
    frame = day_frame(italy_days, DAYS[:5])
    path = tmp_path / "points.csv"
    frame.to_csv(path, index=False)
    result = ingest_source(path, italy_index, coordinate_columns=("lat", "long"))
    assert result.report["evidence"]["tract"]["override"] is True
    assert result.report["tract_column"] == "lat,long"
    assert np.isclose(result.series["total_cases"].sum(), totals(result).sum())
