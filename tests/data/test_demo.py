"""The synthetic demo data set."""

from __future__ import annotations

import json

import numpy as np

from tractcast.data.demo import ensure_demo_data, resolve_inputs, write_demo_data
from tractcast.data.ingest import ingest_source
from tractcast.data.series import series_matrix
from tractcast.geo.index import TractIndex
from tractcast.settings import Settings


def test_demo_data_is_deterministic_for_a_seed(tmp_path):
    first = write_demo_data(tmp_path / "a", seed=7, n_days=60)
    second = write_demo_data(tmp_path / "b", seed=7, n_days=60)
    other = write_demo_data(tmp_path / "c", seed=8, n_days=60)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[0].read_bytes() != other[0].read_bytes()


def test_demo_tracts_are_sixteen_polygons_in_the_fictional_region(tmp_path):
    _, tracts_path = write_demo_data(tmp_path, n_days=30)
    features = json.loads(tracts_path.read_text())["features"]
    assert len(features) == 16
    assert features[0]["properties"] == {"area_code": "T01", "name": "Valmora"}
    coordinates = np.array([c for f in features for c in f["geometry"]["coordinates"][0]])
    assert coordinates[:, 0].min() >= 10 and coordinates[:, 0].max() <= 11.5
    assert coordinates[:, 1].min() >= 44 and coordinates[:, 1].max() <= 45


def test_demo_data_ingests_with_its_messy_rows_reported(tmp_path):
    cases_path, tracts_path = write_demo_data(tmp_path)
    result = ingest_source(cases_path, TractIndex.from_file(tracts_path))
    report = result.report
    assert (report["tracts_matched"], report["tracts_unmatched"], report["days"]) == (16, 0, 420)
    assert (report["value_column"], report["value_kind"]) == ("cumulative_cases", "cumulative")
    assert list(report["unmatched_keys"]) == ["unassigned"]
    assert report["days_imputed"] == 1
    assert report["cleaning"]["negative_days_before"] == 1
    _, _, new = series_matrix(result.series)
    assert (new >= 0).all()
    weekly = new[:, : 7 * (new.shape[1] // 7)].reshape(16, -1, 7).sum(axis=(0, 1))
    assert weekly.argmax() != weekly.argmin()  # a weekly reporting pattern
    assert new.sum(axis=0).max() > 5 * np.median(new.sum(axis=0)[:30])  # epidemic waves


def test_ensure_demo_data_writes_once_into_the_demo_dir(tmp_path):
    settings = Settings(demo_dir=tmp_path / "demo", seed=3)
    cases_path, tracts_path = ensure_demo_data(settings)
    assert cases_path.parent == tmp_path / "demo" and tracts_path.name == "tracts.geojson"
    before = cases_path.stat().st_mtime_ns
    assert ensure_demo_data(settings) == (cases_path, tracts_path)
    assert cases_path.stat().st_mtime_ns == before


def test_resolve_inputs_prefers_configured_sources_else_the_demo(tmp_path):
    configured = Settings(data_source="cases.csv", tracts="layer.gpkg", demo_dir=tmp_path)
    assert resolve_inputs(configured) == ("cases.csv", "layer.gpkg")
    demo = resolve_inputs(Settings(data_source="cases.csv", demo_dir=tmp_path / "d"))
    assert demo == (str(tmp_path / "d" / "cases.csv"), str(tmp_path / "d" / "tracts.geojson"))
