"""What the dashboard reads: tract summaries, a tract's history and earlier forecasts, outlines."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely.geometry
from flask.testing import FlaskClient

from services.api.app import create_app as create_api
from services.geo.app import create_app as create_geo
from tractcast.errors import NotFound, Unavailable
from tractcast.geo.index import TractIndex
from tractcast.models.base import Forecast
from tractcast.registry.store import RegistryReader
from tractcast.serving.build import build_bundle
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, load_bundle, write_bundle
from tractcast.serving.dashboard import BundleShelf, tract_history, tract_summaries
from tractcast.serving.holder import BundleHolder
from tractcast.settings import Settings

MILAN = (45.4642, 9.19)
WEB = Path(__file__).resolve().parents[2] / "web"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def days_after(as_of: str, count: int) -> list[str]:
    start = date.fromisoformat(as_of)
    return [(start + timedelta(days=d)).isoformat() for d in range(1, count + 1)]


def make_bundle(
    model_version: str,
    data_version: str,
    as_of: str = "2024-03-01",
    level: float = 10.0,
    history: tuple[int, ...] = (8, 9, 10, 10, 10, 12, 11, 10, 10),
    horizon: int = 14,
) -> Bundle:
    forecast = tuple(
        ForecastDay(day, level, level - 2, level + 3) for day in days_after(as_of, horizon)
    )
    return Bundle(
        bundle_id=f"{model_version}@{data_version}",
        model_version=model_version,
        data_version=data_version,
        as_of=as_of,
        created_at=f"{as_of}T03:00:00+00:00",
        horizon=horizon,
        tracts={
            "015": TractForecast("015", as_of, 5000, history[-1], forecast, history),
            "108": TractForecast("108", as_of, 3000, 0, forecast, (0,) * 7),
            "097": TractForecast("097", as_of, 900, 2, forecast),  # a bundle without history
        },
    )


def add_bundle(store: Path, bundle: Bundle, mtime: float | None = None) -> None:
    directory = store / "bundles" / bundle.bundle_id
    write_bundle(bundle, directory)
    if mtime is not None:
        os.utime(directory, (mtime, mtime))


def serve(store: Path, bundle_id: str) -> None:
    tmp = store / "current.tmp"
    tmp.symlink_to(Path("bundles") / bundle_id)
    os.replace(tmp, store / "current")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "bundles").mkdir()
    return tmp_path


@pytest.fixture
def api(store: Path) -> FlaskClient:
    app = create_api(Settings(store=store), holder=BundleHolder(RegistryReader(store)))
    return app.test_client()


# ---- bundles carry each tract's history -----------------------------------------------------


def test_a_bundle_keeps_each_tracts_daily_history(tmp_path: Path) -> None:
    bundle = make_bundle("v0001-lstm", "d1")
    write_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert loaded == bundle
    assert loaded.tracts["015"].history == (8, 9, 10, 10, 10, 12, 11, 10, 10)
    assert loaded.tracts["097"].history == ()


def test_a_bundle_written_before_histories_existed_still_loads(tmp_path: Path) -> None:
    write_bundle(make_bundle("v0001-lstm", "d1"), tmp_path / "b", bundle_format=1)
    raw = json.loads((tmp_path / "b" / "bundle.json").read_text())
    for tract in raw["tracts"].values():
        tract.pop("history", None)
    data = json.dumps(raw).encode()
    (tmp_path / "b" / "bundle.json").write_bytes(data)
    (tmp_path / "b" / "bundle.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
    loaded = load_bundle(tmp_path / "b")
    assert all(tract.history == () for tract in loaded.tracts.values())
    assert loaded.tracts["015"].total_cases == 5000


@pytest.mark.parametrize("history", ["12", [1, 2.5], [1, None], [True], {"a": 1}])
def test_a_history_that_is_not_a_list_of_counts_makes_the_bundle_corrupt(
    tmp_path: Path, history: object
) -> None:
    write_bundle(make_bundle("v0001-lstm", "d1"), tmp_path / "b", bundle_format=1)
    raw = json.loads((tmp_path / "b" / "bundle.json").read_text())
    raw["tracts"]["015"]["history"] = history
    data = json.dumps(raw).encode()
    (tmp_path / "b" / "bundle.json").write_bytes(data)
    (tmp_path / "b" / "bundle.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
    with pytest.raises(Unavailable, match="tract 015 has a history"):
        load_bundle(tmp_path / "b")


def test_building_a_bundle_keeps_the_last_days_of_each_tract_up_to_as_of() -> None:
    dates = pd.date_range("2024-01-01", periods=200, freq="D")
    rows = [
        {"date": day, "tract_id": tract, "new_cases": float(i % 50 + offset), "total_cases": 0.0}
        for tract, offset in (("A", 0), ("B", 100))
        for i, day in enumerate(dates)
        if tract == "A" or i >= 150  # B is observed only over the last 50 days
    ]
    series = pd.DataFrame(rows)
    forecast = Forecast(np.ones((2, 14)), np.zeros((2, 14)), np.full((2, 14), 2.0))
    bundle = build_bundle(series, ["A", "B"], forecast, "v0001-lstm", "d1", history_days=120)
    a, b = bundle.tracts["A"], bundle.tracts["B"]
    assert len(a.history) == 120 and len(b.history) == 50
    assert a.history[-1] == a.new_cases == 199 % 50
    assert b.history == tuple(i % 50 + 100 for i in range(150, 200))
    assert tract_history(bundle, "A")["history"][0]["date"] == "2024-03-21"  # 120 days to 07-18


# ---- summaries and histories ----------------------------------------------------------------


def test_a_summary_sets_the_next_weeks_forecast_against_the_last_week() -> None:
    summary = tract_summaries(make_bundle("v0001-lstm", "d1", level=12.0))
    by_id = {row["id"]: row for row in summary["tracts"]}
    milano = by_id["015"]
    assert milano["last_week"] == 10 + 10 + 12 + 11 + 10 + 10 + 10  # the last 7 days: 73
    assert milano["next_week"] == 7 * 12.0
    assert milano["growth"] == round(84 / 73 - 1, 4)
    assert summary["window_days"] == 7 and summary["model_version"] == "v0001-lstm"


def test_a_summary_has_no_growth_after_a_quiet_week_or_without_history() -> None:
    by_id = {row["id"]: row for row in tract_summaries(make_bundle("v1", "d1"))["tracts"]}
    assert (by_id["108"]["last_week"], by_id["108"]["growth"]) == (0, None)
    assert (by_id["097"]["last_week"], by_id["097"]["growth"]) == (None, None)
    assert by_id["097"]["next_week"] == 70.0


def test_a_short_horizon_compares_weeks_of_the_same_length() -> None:
    summary = tract_summaries(make_bundle("v1", "d1", horizon=3))
    milano = next(row for row in summary["tracts"] if row["id"] == "015")
    assert summary["window_days"] == 3
    assert (milano["last_week"], milano["next_week"]) == (11 + 10 + 10, 30.0)
    assert milano["growth"] == round(30 / 31 - 1, 4)


def test_a_history_is_dated_back_from_as_of() -> None:
    answer = tract_history(make_bundle("v1", "d1"), "015")
    assert answer["history"][-1] == {"date": "2024-03-01", "new_cases": 10}
    assert answer["history"][0] == {"date": "2024-02-22", "new_cases": 8}
    assert answer["forecast"][0] == {
        "date": "2024-03-02",
        "new_cases": 10.0,
        "lower": 8.0,
        "upper": 13.0,
    }
    assert answer["earlier"] == []


def test_the_history_of_a_tract_the_bundle_lacks_is_not_found() -> None:
    with pytest.raises(NotFound, match="'999'"):
        tract_history(make_bundle("v1", "d1"), "999")


def test_the_shelf_offers_forecasts_from_older_data_first_the_serving_models_own_first(
    store: Path,
) -> None:
    now = time.time()
    current = make_bundle("v0005-lstm", "d3", as_of="2024-03-01")
    older_same_model = make_bundle("v0005-lstm", "d2", as_of="2024-02-20")
    older_same_family = make_bundle("v0002-lstm", "d2", as_of="2024-02-20")
    older_other = make_bundle("v0006-persistence", "d2", as_of="2024-02-20")
    oldest = make_bundle("v0001-lstm", "d1", as_of="2024-02-10")
    same_data = make_bundle("v0007-moving_average", "d3", as_of="2024-03-01")
    newest_first = [same_data, current, older_other, older_same_family, older_same_model, oldest]
    for age, bundle in enumerate(newest_first):
        add_bundle(store, bundle, mtime=now - age * 60)
    (store / "bundles" / ".tmp-1234").mkdir()  # a bundle being written: never read

    earlier = BundleShelf(RegistryReader(store)).earlier_than(current, limit=5)

    assert [bundle.bundle_id for bundle in earlier] == [
        "v0005-lstm@d2",
        "v0002-lstm@d2",
        "v0006-persistence@d2",
        "v0001-lstm@d1",
        "v0007-moving_average@d3",
    ]


def test_the_shelf_passes_over_a_corrupt_bundle(store: Path) -> None:
    current = make_bundle("v0002-lstm", "d2", as_of="2024-03-01")
    add_bundle(store, current)
    add_bundle(store, make_bundle("v0001-lstm", "d1", as_of="2024-02-20"))
    (store / "bundles" / "v0001-lstm@d1" / "bundle.json").write_text('{"cut": ')
    add_bundle(store, make_bundle("v0003-lstm", "d0", as_of="2024-02-10"))
    shelf = BundleShelf(RegistryReader(store))
    assert [b.bundle_id for b in shelf.earlier_than(current)] == ["v0003-lstm@d0"]
    assert [b.bundle_id for b in shelf.earlier_than(current)] == ["v0003-lstm@d0"]


# ---- the api routes ---------------------------------------------------------------------------


def test_the_dashboard_summarises_every_tract_of_the_serving_bundle(
    store: Path, api: FlaskClient
) -> None:
    add_bundle(store, make_bundle("v0002-lstm", "d2"))
    serve(store, "v0002-lstm@d2")
    response = api.get("/v1/dashboard/tracts")
    assert response.status_code == 200
    body = response.get_json()
    assert {row["id"] for row in body["tracts"]} == {"015", "108", "097"}
    assert (body["model_version"], body["as_of"]) == ("v0002-lstm", "2024-03-01")


def test_a_tracts_history_comes_with_earlier_forecasts_to_hold_against_it(
    store: Path, api: FlaskClient
) -> None:
    add_bundle(store, make_bundle("v0001-lstm", "d1", as_of="2024-02-25", level=20.0))
    add_bundle(store, make_bundle("v0002-lstm", "d2", as_of="2024-03-01"))
    serve(store, "v0002-lstm@d2")
    response = api.get("/v1/tracts/015/history")
    assert response.status_code == 200
    body = response.get_json()
    assert body["tract_id"] == "015" and body["model_version"] == "v0002-lstm"
    assert body["history"][-1]["date"] == body["as_of"] == "2024-03-01"
    assert len(body["forecast"]) == 14 and body["forecast"][0]["date"] == "2024-03-02"
    (earlier,) = body["earlier"]
    assert (earlier["model_version"], earlier["as_of"]) == ("v0001-lstm", "2024-02-25")
    # its first days are days the history has actuals for
    actual = {day["date"] for day in body["history"]}
    assert {day["date"] for day in earlier["forecast"][:5]} <= actual
    assert earlier["forecast"][0]["new_cases"] == 20.0


def test_the_history_of_an_unknown_tract_is_a_json_404(store: Path, api: FlaskClient) -> None:
    add_bundle(store, make_bundle("v0002-lstm", "d2"))
    serve(store, "v0002-lstm@d2")
    response = api.get("/v1/tracts/nowhere/history")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_without_a_serving_bundle_the_dashboard_routes_are_unavailable(api: FlaskClient) -> None:
    for path in ("/v1/dashboard/tracts", "/v1/tracts/015/history"):
        response = api.get(path)
        assert response.status_code == 503, path
        assert response.get_json()["error"] == "unavailable"


def test_the_contract_describes_the_dashboard_routes(api: FlaskClient) -> None:
    paths = api.get("/openapi.json").get_json()["paths"]
    assert {"/v1/dashboard/tracts", "/v1/tracts/{tract_id}/history", "/v1/tracts/geojson"} <= set(
        paths
    )


# ---- the geo route ------------------------------------------------------------------------


def test_every_province_outline_comes_in_one_light_feature_collection(
    italy_provinces: Path,
) -> None:
    index = TractIndex.from_file(italy_provinces)
    geo = create_geo(Settings(tracts=str(italy_provinces)), index=index).test_client()
    response = geo.get("/v1/tracts/geojson")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    assert len(response.data) < 400_000  # the full layer is 5.7 MB
    body = response.get_json(force=True)
    assert body["type"] == "FeatureCollection"
    assert len(body["features"]) == len(index) == 107
    milano = next(f for f in body["features"] if f["properties"]["id"] == "015")
    assert milano["properties"] == {"id": "015", "name": "Milano"}
    outline = shapely.geometry.shape(milano["geometry"])
    assert outline.contains(shapely.geometry.Point(MILAN[1], MILAN[0]))
    assert outline.area == pytest.approx(index.geometry("015").area, rel=0.03)


# ---- the page itself --------------------------------------------------------------------------


def test_the_page_needs_nothing_from_outside_the_project() -> None:
    files = {path.name: path.read_text() for path in WEB.iterdir() if path.is_file()}
    assert {"index.html", "app.js", "style.css"} <= set(files)
    for name, text in files.items():
        remote = [url for url in re.findall(r"https?://[^\s\"'`)]+", text) if url != SVG_NAMESPACE]
        assert remote == [], name
        assert not re.search(r"(?:src|href)=[\"']?//|url\(\s*[\"']?//|@import", text), name
    # every file the page names is one nginx serves from web/
    named = re.findall(r"(?:src|href)=\"/static/([^\"]+)\"", files["index.html"])
    for text in files.values():
        named += re.findall(r"from \"\./([^\"]+)\"", text)
    assert {"app.js", "style.css", "map.js", "chart.js", "api.js"} <= set(named)
    assert all((WEB / name).is_file() for name in named)
