"""Ingest of the real Italy province file (read once per session)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tractcast.data.ingest import IngestResult, ingest_source
from tractcast.data.series import read_series, series_matrix, write_series
from tractcast.geo.index import TractIndex


@pytest.fixture(scope="session")
def italy(italy_cases: Path, italy_index: TractIndex) -> IngestResult:
    """The Italy file ingested once (its speed is measured by bench/ingest.py, not here)."""
    return ingest_source(italy_cases, italy_index)


def test_italy_matches_every_province_and_no_tract_lacks_data(italy):
    assert italy.report["tracts_matched"] == 107
    assert italy.report["tracts_unmatched"] == 0
    assert italy.series["tract_id"].nunique() == 107


def test_italy_infers_columns_by_content(italy):
    report = italy.report
    assert report["format"] == "long"
    assert report["date_column"] == "data"
    assert report["tract_column"] in {"codice_provincia", "sigla_provincia"}
    assert report["value_column"] == "totale_casi"
    assert report["value_kind"] == "cumulative"
    assert report["evidence"]["tract"]["share_tracts_matched"] == 1.0
    assert report["evidence"]["value"]["share_rising_of_changes"] > 0.9


def test_italy_covers_1781_consecutive_days(italy):
    report = italy.report
    assert (report["days"], report["start"], report["end"]) == (1781, "2020-02-24", "2025-01-08")
    assert len(italy.series) == 107 * 1781
    assert report["days_filled"] == 0  # no day is missing
    spread = report["cleaning"]["days_spread"]
    assert italy.series["imputed"].sum() == report["days_imputed"] == spread > 0
    assert report["rows_read"] == 262_807
    assert report["rows_quarantined"] == 0


def test_italy_series_has_the_canonical_columns_and_order(italy):
    series = italy.series
    assert list(series.columns) == ["date", "tract_id", "new_cases", "total_cases", "imputed"]
    assert pd.api.types.is_datetime64_any_dtype(series["date"])
    assert (series["date"] == series["date"].dt.normalize()).all()
    assert series.equals(series.sort_values(["tract_id", "date"], ignore_index=True))
    assert len(italy.data_version) == 16


def test_milano_015_is_a_tract_of_the_series(italy):
    milano = italy.series[italy.series["tract_id"] == "015"]
    assert len(milano) == 1781
    assert milano["total_cases"].iloc[-1] > 1_000_000


def test_pseudo_areas_are_reported_with_their_totals_and_left_out(italy):
    unmatched = italy.report["unmatched_keys"]
    assert len(unmatched) == 42
    outside = sum(v["total"] for k, v in unmatched.items() if 879 <= int(k) <= 899)
    unassigned = sum(v["total"] for k, v in unmatched.items() if 979 <= int(k) <= 999)
    assert (outside, unassigned) == (266_280, 260_686)
    assert not set(unmatched) & set(italy.series["tract_id"])


def test_cleaned_italy_series_has_no_negative_day_and_conserves_each_total(italy):
    tract_ids, _, new = series_matrix(italy.series, "new_cases")
    _, _, total = series_matrix(italy.series, "total_cases")
    assert (new >= 0).all()
    np.testing.assert_array_equal(np.cumsum(new, axis=1), total)
    assert total[:, -1].sum() == 26_437_688  # the last reported totals of the real provinces
    assert italy.report["cleaning"]["negative_days_before"] == 2447
    assert italy.report["cleaning"]["negative_days_after"] == 0
    assert len(tract_ids) == 107


def test_transient_glitches_are_lifted_not_offset_against_history(italy):
    napoli = italy.series[italy.series["tract_id"] == "063"].set_index("date")
    assert napoli.loc["2024-03-11", "new_cases"] == 0
    assert napoli.loc["2024-03-10", "total_cases"] > 1_300_000


def test_write_series_writes_parquet_and_a_json_report(italy, tmp_path):
    series_path, report_path = write_series(italy, tmp_path)
    assert read_series(tmp_path).equals(italy.series)
    report = json.loads(report_path.read_text())
    assert report["data_version"] == italy.data_version
    assert series_path.name == "series.parquet"
    for key in (
        "format date_column tract_column layer_property value_column value_kind tracts_matched "
        "tracts_unmatched unmatched_keys days start end rows_read rows_quarantined "
        "quarantine_reasons evidence cleaning"
    ).split():
        assert key in report
