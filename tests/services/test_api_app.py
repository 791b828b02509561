"""The public prediction API through Flask's test client, with a fake geo service."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from shapely.geometry import box

from services.api.app import create_app
from tractcast.errors import Unavailable
from tractcast.geo.cells import CellAnswers, GridSpec
from tractcast.geo.client import LayerReplica
from tractcast.geo.index import RadiusHits, Tract
from tractcast.geo.outlines import Outlines
from tractcast.logs import JsonFormatter
from tractcast.registry.store import RegistryReader
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, write_bundle
from tractcast.serving.holder import BundleHolder
from tractcast.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]
MILAN = {"lat": "45.4642", "lon": "9.19"}
MONZA = {"lat": "45.58", "lon": "9.27"}
SEA = {"lat": "43.0", "lon": "5.0"}
BOXES = {  # tract -> (lat_min, lat_max, lon_min, lon_max)
    Tract("015", "Milano"): (45.3, 45.55, 8.9, 9.4),
    Tract("108", "Monza e della Brianza"): (45.55, 45.75, 9.1, 9.5),
}


class FakeGeo:
    """Stands in for GeoClient: tracts are boxes; `down` makes every call Unavailable."""

    def __init__(self) -> None:
        self.down = False
        self.batch_calls = 0
        self.replica = LayerReplica()  # never loaded: the boxes below answer every point

    def tract_for_point(self, lat: float, lon: float) -> Tract | None:
        self._check()
        for tract, (lat0, lat1, lon0, lon1) in BOXES.items():
            if lat0 <= lat < lat1 and lon0 <= lon < lon1:
                return tract
        return None

    def tracts_for_points(self, points: Sequence[tuple[float, float]]) -> list[Tract | None]:
        self._check()
        self.batch_calls += 1
        return [self.tract_for_point(lat, lon) for lat, lon in points]

    layer = "boxes"  # the fingerprint of its one layer

    def layer_copy(self) -> FakeGeo:
        self._check()
        return self

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> RadiusHits:
        self._check()
        return RadiusHits(self.layer, list(BOXES), [0, 1], [0.0, 9.8])

    def ready(self) -> bool:
        return not self.down

    def load_replica_until_held(self) -> bool:
        return False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("geo service unavailable")


def make_bundle(model_version: str, data_version: str, scale: float = 1.0) -> Bundle:
    def series(tract_id: str, total: int, new: int) -> TractForecast:
        days = tuple(
            ForecastDay(
                f"2024-03-{d + 2:02d}", scale * (new + d), scale * new, scale * (new + 2 * d)
            )
            for d in range(14)
        )
        return TractForecast(tract_id, "2024-03-01", total, new, days)

    return Bundle(
        bundle_id=f"{model_version}@{data_version}",
        model_version=model_version,
        data_version=data_version,
        as_of="2024-03-01",
        created_at="2024-03-02T03:00:00+00:00",
        horizon=14,
        tracts={"015": series("015", 120_000, 400), "108": series("108", 40_000, 90)},
    )


def publish(store: Path, bundle: Bundle) -> None:
    write_bundle(bundle, store / "bundles" / bundle.bundle_id)
    tmp = store / "current.tmp"
    tmp.symlink_to(Path("bundles") / bundle.bundle_id)
    os.replace(tmp, store / "current")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "bundles").mkdir()
    return tmp_path


@pytest.fixture
def geo() -> FakeGeo:
    return FakeGeo()


@pytest.fixture
def app(store: Path, geo: FakeGeo) -> Flask:
    publish(store, make_bundle("v0001-persistence", "d0", scale=0.5))
    publish(store, make_bundle("v0002-lstm", "d1"))
    settings = Settings(store=store, geo_url="http://geo.invalid")
    holder = BundleHolder(RegistryReader(store))
    return create_app(settings, geo=geo, holder=holder)  # type: ignore[arg-type]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def assert_error(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.is_json
    assert response.json["error"] == code
    assert response.json["message"]


def test_a_milan_point_gets_its_tract_counts_and_forecast(client: FlaskClient) -> None:
    response = client.get("/v1/forecast", query_string=MILAN)

    assert response.status_code == 200
    body = response.json
    assert body["tract"] == {"id": "015", "name": "Milano"}
    assert (body["model_version"], body["data_version"]) == ("v0002-lstm", "d1")
    assert (body["as_of"], body["total_cases"], body["new_cases"]) == ("2024-03-01", 120_000, 400)
    assert len(body["forecast"]) == 14
    assert body["next_day"] == body["forecast"][0]
    assert set(body["next_day"]) == {"date", "new_cases", "lower", "upper", "intervals"}


def test_horizon_3_gives_3_days(client: FlaskClient) -> None:
    response = client.get("/v1/forecast", query_string={**MILAN, "horizon": "3"})

    assert [day["date"] for day in response.json["forecast"]] == [
        "2024-03-02",
        "2024-03-03",
        "2024-03-04",
    ]


def test_model_version_pins_an_older_model(client: FlaskClient) -> None:
    response = client.get(
        "/v1/forecast", query_string={**MILAN, "model_version": "v0001-persistence"}
    )

    assert response.status_code == 200
    assert (response.json["model_version"], response.json["data_version"]) == (
        "v0001-persistence",
        "d0",
    )


def test_unknown_model_version_is_404(client: FlaskClient) -> None:
    response = client.get("/v1/forecast", query_string={**MILAN, "model_version": "v0042-lstm"})

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "query",
    [
        {"lat": "north", "lon": "9.19"},
        {"lat": "91", "lon": "9.19"},
        {"lon": "9.19"},
        {"lat": "nan", "lon": "9.19"},
        {"lat": "45.46", "lon": "-inf"},
        {"lat": "45.46", "lon": "1e999"},
        {"lat": "4_5", "lon": "9.19"},
        {"lat": "", "lon": "9.19"},
        {**MILAN, "horizon": "0"},
        {**MILAN, "horizon": "15"},
        {**MILAN, "horizon": "2.5"},
        {**MILAN, "horizon": ""},
        {**MILAN, "model_version": ""},
        {**MILAN, "model_version": "../../etc"},
        {**MILAN, "model_version": "v0001-lstm\n"},
    ],
)
def test_bad_input_is_400_json(client: FlaskClient, query: dict[str, str]) -> None:
    assert_error(client.get("/v1/forecast", query_string=query), 400, "invalid_input")


@pytest.mark.parametrize(
    "radius", ["-5", "0", "501", "1e9", "nan", "inf", "fifty", ""], ids=lambda r: repr(r)
)
def test_a_huge_negative_or_non_numeric_radius_is_400(client: FlaskClient, radius: str) -> None:
    response = client.get("/v1/stats/radius", query_string={**MILAN, "radius_km": radius})
    assert_error(response, 400, "invalid_input")


@pytest.mark.parametrize(
    "body",
    [
        {"points": [{"lat": "nan", "lon": 9}]},
        {"points": [{"lat": True, "lon": 9}]},
        {"points": [{"lat": 45, "lon": None}]},
        {"points": [45, 9]},
        {"points": {"lat": 45, "lon": 9}},
        {"points": []},
        {"points": [{"lat": 45, "lon": 9}], "horizon": 99},
        {"points": [{"lat": 45, "lon": 9}], "horizon": "three"},
    ],
)
def test_a_bad_batch_is_400_json(client: FlaskClient, body: object) -> None:
    assert_error(client.post("/v1/forecast", json=body), 400, "invalid_input")


def test_a_bad_horizon_in_the_query_of_a_batch_is_400(client: FlaskClient) -> None:
    body = {"points": [{"lat": 45.4642, "lon": 9.19}], "horizon": 2}

    bad = client.post("/v1/forecast", json=body, query_string={"horizon": "15"})
    good = client.post("/v1/forecast", json=body, query_string={"horizon": "5"})

    assert_error(bad, 400, "invalid_input")
    assert len(good.json["results"][0]["forecast"]) == 2  # the body's horizon wins


def test_a_body_that_is_not_json_is_400_and_not_an_object_is_400(client: FlaskClient) -> None:
    broken = client.post("/v1/forecast", data="{points:", content_type="application/json")
    listed = client.post("/v1/forecast", data="[1, 2]", content_type="application/json")

    assert_error(broken, 400, "invalid_input")
    assert_error(listed, 400, "invalid_input")


def test_more_than_ten_thousand_points_is_413(client: FlaskClient) -> None:
    body = {"points": [{"lat": 45.4642, "lon": 9.19}] * 10_001}

    assert_error(client.post("/v1/forecast", json=body), 413, "payload_too_large")


def test_a_body_over_two_megabytes_is_413_json(client: FlaskClient) -> None:
    huge = '{"points": [' + ",".join(['{"lat": 45.4642, "lon": 9.19}'] * 80_000) + "]}"

    response = client.post("/v1/forecast", data=huge, content_type="application/json")

    assert_error(response, 413, "payload_too_large")


def test_a_point_outside_every_tract_is_404_json(client: FlaskClient) -> None:
    assert_error(client.get("/v1/forecast", query_string=SEA), 404, "not_found")


def test_geo_down_is_503_json(client: FlaskClient, geo: FakeGeo) -> None:
    geo.down = True

    assert_error(client.get("/v1/forecast", query_string=MILAN), 503, "unavailable")


def test_no_bundle_yet_is_503_json(tmp_path: Path, geo: FakeGeo) -> None:
    app = create_app(Settings(store=tmp_path), geo=geo)  # type: ignore[arg-type]

    assert_error(app.test_client().get("/v1/forecast", query_string=MILAN), 503, "unavailable")


def test_batch_answers_each_point_with_one_geo_call(client: FlaskClient, geo: FakeGeo) -> None:
    points = [MILAN, SEA, MONZA]
    body = {"points": [{"lat": float(p["lat"]), "lon": float(p["lon"])} for p in points]}

    response = client.post("/v1/forecast", json=body, query_string={"horizon": "2"})

    assert response.status_code == 200
    results = response.json["results"]
    assert [r.get("tract", {}).get("id") for r in results] == ["015", None, "108"]
    assert results[1]["error"] == "not_found"
    assert all(len(r["forecast"]) == 2 for r in (results[0], results[2]))
    assert (response.json["model_version"], response.json["data_version"]) == ("v0002-lstm", "d1")
    assert geo.batch_calls == 1


def test_batch_with_a_bad_point_is_400(client: FlaskClient) -> None:
    response = client.post("/v1/forecast", json={"points": [{"lat": 200, "lon": 9}]})

    assert_error(response, 400, "invalid_input")


def test_batch_without_a_json_body_is_415(client: FlaskClient) -> None:
    response = client.post("/v1/forecast", data="lat=45&lon=9", content_type="text/plain")

    assert_error(response, 415, "unsupported_media_type")


def test_unknown_path_is_404_json(client: FlaskClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_json(client: FlaskClient) -> None:
    response = client.delete("/v1/forecast")

    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_radius_lists_tracts_and_totals_equal_their_sums(client: FlaskClient) -> None:
    response = client.get("/v1/stats/radius", query_string={**MILAN, "radius_km": "15"})

    assert response.status_code == 200
    body = response.json
    tracts = body["tracts"]
    assert [t["id"] for t in tracts] == ["015", "108"]
    assert set(tracts[0]) == {"id", "name", "distance_km", "total_cases", "new_cases", "next_day"}
    assert body["totals"] == {
        "tracts": 2,
        "total_cases": 160_000,
        "new_cases": 490,
        "next_day": sum(t["next_day"]["new_cases"] for t in tracts),
    }
    assert body["radius_km"] == 15.0
    assert (body["model_version"], body["data_version"]) == ("v0002-lstm", "d1")


def test_radius_without_radius_is_400(client: FlaskClient) -> None:
    assert_error(client.get("/v1/stats/radius", query_string=MILAN), 400, "invalid_input")


def test_healthz_is_always_ok(tmp_path: Path, geo: FakeGeo) -> None:
    geo.down = True
    app = create_app(Settings(store=tmp_path), geo=geo)  # type: ignore[arg-type]

    response = app.test_client().get("/healthz")

    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_when_a_bundle_is_loaded_and_geo_answers(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json["status"] == "ready"
    assert response.json["model_version"] == "v0002-lstm"


def test_readyz_says_what_is_missing(tmp_path: Path, geo: FakeGeo) -> None:
    geo.down = True
    app = create_app(Settings(store=tmp_path), geo=geo)  # type: ignore[arg-type]

    response = app.test_client().get("/readyz")

    assert_error(response, 503, "unavailable")
    assert "no serving bundle" in response.json["message"]
    assert "geo service" in response.json["message"]


def test_metrics_count_requests_and_name_the_serving_versions(client: FlaskClient) -> None:
    client.get("/v1/forecast", query_string=MILAN)
    client.get("/v1/forecast", query_string=SEA)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert (
        'tractcast_http_requests_total{endpoint="/v1/forecast",method="GET",service="api",'
        'status="200"} 1.0'
    ) in text
    assert 'status="404"' in text
    assert "tractcast_http_request_duration_seconds_bucket" in text
    assert 'model_version="v0002-lstm"' in text and 'data_version="d1"' in text
    assert "tractcast_serving_bundle_age_seconds" in text
    assert "tractcast_serving_bundle_loaded 1.0" in text


def test_metrics_say_when_no_bundle_is_loaded(tmp_path: Path, geo: FakeGeo) -> None:
    app = create_app(Settings(store=tmp_path), geo=geo)  # type: ignore[arg-type]

    text = app.test_client().get("/metrics").get_data(as_text=True)

    assert "tractcast_serving_bundle_loaded 0.0" in text
    assert "tractcast_serving_info" not in text
    assert "tractcast_geo_replica_loaded 0.0" in text


def test_metrics_name_the_layer_of_the_copy_held(tmp_path: Path, geo: FakeGeo) -> None:
    cells = CellAnswers(GridSpec(9.0, 45.3, 0.1, 0.1, 2, 1), np.zeros(2, dtype=np.int16))
    outlines = Outlines.of(np.array([box(9.0, 45.3, 9.2, 45.4)]), ["015"]).to_dict()
    copy = {"layer": "abc", "ids": ["015"], "names": ["Milano"], "outlines": outlines}
    geo.replica.replace({**copy, **cells.to_dict()}, None)
    app = create_app(Settings(store=tmp_path), geo=geo)  # type: ignore[arg-type]

    text = app.test_client().get("/metrics").get_data(as_text=True)

    assert "tractcast_geo_replica_loaded 1.0" in text
    assert 'tractcast_geo_replica_tracts{layer="abc"} 1.0' in text


def test_every_answer_carries_the_request_id(client: FlaskClient) -> None:
    given = client.get("/v1/forecast", query_string=MILAN, headers={"X-Request-ID": "r-1"})
    minted = client.get("/v1/nothing-here")

    assert given.headers["X-Request-ID"] == "r-1"
    assert len(minted.headers["X-Request-ID"]) == 32


def test_each_request_is_one_json_log_line_with_its_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tractcast.access")

    client.get("/v1/forecast", query_string=SEA, headers={"X-Request-ID": "r-404"})

    [record] = [r for r in caplog.records if r.name == "tractcast.access"]
    line = json.loads(JsonFormatter().format(record))
    assert {k: line[k] for k in ("level", "service", "request_id", "method", "path", "status")} == {
        "level": "info",
        "service": "api",
        "request_id": "r-404",
        "method": "GET",
        "path": "/v1/forecast",
        "status": 404,
    }
    assert line["duration_ms"] >= 0 and line["time"].endswith("+00:00")


def test_openapi_describes_every_public_endpoint(client: FlaskClient) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    doc = response.json
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {
        "/v1/forecast",
        "/v1/stats/radius",
        "/v1/tracts/lookup",
        "/v1/models",
        "/v1/models/current",
        "/v1/models/{version}",
        "/v1/admin/rollback",
        "/v1/admin/promote",
        "/v1/admin/retrain",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }
    assert set(doc["paths"]["/v1/forecast"]) == {"get", "post"}
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path in ("/v1/admin/rollback", "/v1/admin/promote", "/v1/admin/retrain"):
        assert doc["paths"][path]["post"]["security"] == [{"bearerAuth": []}]
    error = doc["paths"]["/v1/forecast"]["get"]["responses"]["400"]
    assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_every_route_of_the_app_is_in_the_openapi_document(app: Flask) -> None:
    doc = app.test_client().get("/openapi.json").json
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)  # Flask -> OpenAPI
            assert path in doc["paths"]
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert method.lower() in doc["paths"][path]


HEAVY = {"tensorflow", "keras", "fiona", "pyproj", "boto3", "botocore"}


def test_the_api_process_never_imports_tensorflow_keras_or_the_layer_readers(
    tmp_path: Path,
) -> None:
    # Fiona (with GDAL and boto3) and pyproj read layers, which only geo does: about 60 MB a worker.
    code = (
        "import sys\n"
        "from services.api.app import create_app\n"
        "from tractcast.settings import Settings\n"
        f"create_app(Settings(store={str(tmp_path)!r}))\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "assert not heavy, heavy\n"
        "import services.api.wsgi\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT), str(PROJECT / "src")])}
    env["TRACTCAST_STORE"] = str(tmp_path)

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
