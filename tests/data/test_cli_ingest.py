"""`tractcast ingest SOURCE --tracts LAYER [--out DIR] [--json]` on files, folders and URLs."""

from __future__ import annotations

import json

import pandas as pd

from tractcast.cli import main
from tractcast.settings import Settings

from .conftest import publish_days

DAYS = ["20200301", "20200302", "20200303", "20200304"]
SUMMARY = (
    "format date_column tract_column value_column value_kind tracts_matched tracts_unmatched "
    "days start end rows_read rows_quarantined quarantine_reasons"
).split()


def test_ingest_of_a_folder_prints_the_summary_and_writes_series_and_report(
    tmp_path, italy_days, italy_provinces, capsys
):
    folder = tmp_path / "dati-province"
    publish_days(folder, italy_days, DAYS)
    out = tmp_path / "out"
    args = ["ingest", str(folder), "--tracts", str(italy_provinces), "--out", str(out), "--json"]
    assert main(args, settings=Settings(store=tmp_path / "store")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(SUMMARY) <= set(summary)
    assert (summary["format"], summary["days"], summary["start"]) == (
        "file_per_day",
        4,
        "2020-03-01",
    )
    series = pd.read_parquet(out / "series.parquet")
    assert list(series.columns) == ["date", "tract_id", "new_cases", "total_cases", "imputed"]
    report = json.loads((out / "report.json").read_text())
    assert report["data_version"] == summary["data_version"]
    assert report["evidence"]["value"]["share_rising_of_changes"] > 0.9


def test_ingest_reads_overrides_from_options_and_settings(
    tmp_path, italy_days, italy_provinces, capsys
):
    folder = tmp_path / "dati-province"
    publish_days(folder, italy_days, DAYS)
    settings = Settings(store=tmp_path / "store", value_column="totale_casi")
    args = ["ingest", str(folder), "--tracts", str(italy_provinces), "--out", str(tmp_path)]
    assert main([*args, "--value-kind", "daily"], settings=settings) == 0
    printed = capsys.readouterr().out
    assert "value_column: totale_casi" in printed
    assert "value_kind: daily" in printed


def test_ingest_of_a_portal_url(portal, italy_days, italy_provinces, tmp_path, capsys):
    publish_days(portal.root / "dati-province", italy_days, DAYS)
    url = f"{portal.url}/dati-province/"
    args = ["ingest", url, "--tracts", str(italy_provinces), "--out", str(tmp_path), "--json"]
    assert main(args, settings=Settings(store=tmp_path / "store")) == 0
    assert json.loads(capsys.readouterr().out)["tracts_matched"] == 107


def test_ingest_of_a_refused_release_is_a_clear_error(tmp_path, italy_provinces, capsys):
    (tmp_path / "cases.csv").write_text("date,code,cases\n2099-01-01,001,4\n")
    args = ["ingest", str(tmp_path / "cases.csv"), "--tracts", str(italy_provinces), "--json"]
    assert main([*args, "--out", str(tmp_path)], settings=Settings()) == 2
    assert json.loads(capsys.readouterr().err)["error"] == "data_rejected"


def test_ingest_json_names_the_date_source_and_the_relations_between_columns(tmp_path, capsys):
    from tests.data import corpus

    layer_path = tmp_path / "counties.geojson"
    corpus.write_layer(layer_path)
    folder = corpus.per_day_with_update_times(tmp_path / "daily")
    code = main(
        [
            "ingest",
            str(folder),
            "--tracts",
            str(layer_path),
            "--out",
            str(tmp_path / "o"),
            "--id-field",
            "code",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["date_source"]["column"] == "[date in file name]"
    assert summary["date_source"]["role"] == "report_date"
    assert "'Last Update' (update time)" in summary["date_source"]["disagreement"]
    assert summary["value_column"] == "Confirmed"
    rates = corpus.per_area_with_rates(tmp_path / "areas")
    code = main(
        [
            "ingest",
            str(rates),
            "--tracts",
            str(layer_path),
            "--out",
            str(tmp_path / "p"),
            "--id-field",
            "code",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    relations = {(r["column"], r["source"], r["kind"]) for r in summary["relations"]}
    assert ("new_cases", "total_cases", "difference") in relations
    assert ("weekly_cases", "total_cases", "rolling_sum") in relations
    assert "population" in summary["columns_set_aside"]["total_cases_per_million"]
