"""The geo service over HTTP, on the real Italy provinces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import shapely.geometry
from flask import Flask
from flask.testing import FlaskClient

from services.geo.app import create_app
from services.geo.state import IndexHolder
from tractcast.data.demo import ensure_demo_data
from tractcast.geo.client import LayerReplica
from tractcast.geo.index import Tract, TractIndex
from tractcast.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def provinces(italy_provinces: Path) -> TractIndex:
    return TractIndex.from_file(italy_provinces)


@pytest.fixture
def app(italy_provinces: Path, provinces: TractIndex) -> Flask:
    return create_app(Settings(tracts=str(italy_provinces)), index=provinces)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_lookup_finds_milano(client: FlaskClient, provinces: TractIndex) -> None:
    response = client.get("/v1/tracts/lookup?lat=45.4642&lon=9.19")
    assert response.status_code == 200
    assert response.json["tract"] == {"id": "015", "name": "Milano"}
    # Milan's centre is far from any border: the answer holds for its whole grid cell.
    cell = response.json["cell"]
    assert cell["layer"] == provinces.layer_id and cell["grid"] == provinces.grid.to_list()
    assert provinces.grid.cell(45.4642, 9.19) == cell["index"]


def test_a_lookup_next_to_a_border_names_no_cell(client: FlaskClient) -> None:
    # Milano | Monza e della Brianza: a few metres south of their border.
    lat, lon = border_point(client)
    response = client.get(f"/v1/tracts/lookup?lat={lat}&lon={lon}")
    assert response.status_code == 200 and "cell" not in response.json


def test_the_replica_comes_with_an_etag_and_answers_as_geo_does(
    client: FlaskClient, provinces: TractIndex
) -> None:
    response = client.get("/v1/tracts/replica")
    assert response.status_code == 200 and response.headers["ETag"]
    replica = LayerReplica()
    replica.replace(response.json, response.headers["ETag"])
    assert replica.tract_for_point(45.4642, 9.19) == Tract("015", "Milano")
    assert replica.tract_for_point(40.0, 12.0) is None  # at sea, away from any coast
    assert replica.copy is not None and replica.copy.layer == provinces.layer_id
    rows = client.get("/v1/tracts/radius?lat=45.4642&lon=9.19&radius_km=50").json["tracts"]
    hits = replica.copy.tracts_within_radius(45.4642, 9.19, 50.0).tract_hits()
    assert [
        {"id": h.tract.id, "name": h.tract.name, "distance_km": h.distance_km} for h in hits
    ] == rows

    again = client.get("/v1/tracts/replica", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and not again.data


def test_a_point_at_sea_is_not_found(client: FlaskClient) -> None:
    response = client.get("/v1/tracts/lookup?lat=40.0&lon=12.0")
    assert response.status_code == 404
    assert response.json["error"] == "not_found" and "lat=40" in response.json["message"]


@pytest.mark.parametrize(
    "query", ["lat=abc&lon=9", "lat=45", "lat=91&lon=9", "lat=45&lon=nan", "lat=45&lon=181"]
)
def test_bad_coordinates_are_a_json_400(client: FlaskClient, query: str) -> None:
    response = client.get(f"/v1/tracts/lookup?{query}")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_input" and response.json["message"]


def test_batch_lookup_answers_every_point_in_order(client: FlaskClient) -> None:
    points = [{"lat": 45.4642, "lon": 9.19}, {"lat": 40.0, "lon": 12.0}, {"lat": 41.9, "lon": 12.5}]
    response = client.post("/v1/tracts/lookup", json={"points": points})
    assert response.status_code == 200
    assert [r["tract"] and r["tract"]["id"] for r in response.json["results"]] == [
        "015",
        None,
        "058",
    ]


def test_batch_lookup_of_a_thousand_points(client: FlaskClient) -> None:
    points = [{"lat": 45.4642 + i * 1e-5, "lon": 9.19} for i in range(1000)]
    response = client.post("/v1/tracts/lookup", json={"points": points})
    assert response.status_code == 200 and len(response.json["results"]) == 1000


def test_batch_lookup_names_a_bad_point(client: FlaskClient) -> None:
    response = client.post("/v1/tracts/lookup", json={"points": [{"lat": 45, "lon": 9}, {}]})
    assert response.status_code == 400 and "points[1]" in response.json["message"]


def test_batch_lookup_needs_a_json_body(client: FlaskClient) -> None:
    response = client.post("/v1/tracts/lookup", data="lat=1", content_type="text/plain")
    assert response.status_code == 415 and response.json["error"] == "unsupported_media_type"


def test_radius_lists_milano_first_then_its_neighbours(client: FlaskClient) -> None:
    response = client.get("/v1/tracts/radius?lat=45.4642&lon=9.19&radius_km=50")
    assert response.status_code == 200
    tracts = response.json["tracts"]
    assert tracts[0] == {"id": "015", "name": "Milano", "distance_km": 0.0}
    assert {"108", "098", "018"} <= {t["id"] for t in tracts}
    assert [t["distance_km"] for t in tracts] == sorted(t["distance_km"] for t in tracts)


def test_geo_answers_with_the_request_id_it_was_given(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    minted = client.get("/healthz", headers={"X-Request-ID": "no spaces allowed"})
    assert len(minted.headers["X-Request-ID"]) == 32


def test_geo_exposes_prometheus_metrics(client: FlaskClient) -> None:
    client.get("/v1/tracts/lookup?lat=45.4642&lon=9.19")
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'tractcast_http_requests_total{endpoint="/v1/tracts/lookup",method="GET",'
        'service="geo",status="200"} 1.0'
    ) in text
    assert "tractcast_http_request_duration_seconds_bucket" in text


def border_point(client: FlaskClient) -> tuple[float, float]:
    """A point a few metres inside Milano from its border with Monza e della Brianza."""
    milano = shapely.geometry.shape(client.get("/v1/tracts/015").json["geometry"])
    monza = shapely.geometry.shape(client.get("/v1/tracts/108").json["geometry"])
    border = milano.boundary.intersection(monza.boundary)
    on_border = border.interpolate(0.5, normalized=True)
    inside = milano.intersection(on_border.buffer(0.0003))
    point = inside.representative_point()
    return point.y, point.x


def test_radius_needs_a_valid_radius(client: FlaskClient) -> None:
    response = client.get("/v1/tracts/radius?lat=45.4642&lon=9.19&radius_km=-1")
    assert response.status_code == 400 and "radius_km" in response.json["message"]


def test_the_tract_list_names_its_fields(client: FlaskClient) -> None:
    body = client.get("/v1/tracts").json
    assert (body["id_field"], body["name_field"], body["count"]) == (
        "codice_provincia",
        "prov_name",
        107,
    )
    assert {"id": "015", "name": "Milano"} in body["tracts"]


def test_an_outline_is_a_geojson_feature(client: FlaskClient) -> None:
    response = client.get("/v1/tracts/015")
    assert response.status_code == 200
    assert response.json["type"] == "Feature" and response.json["id"] == "015"
    assert response.json["geometry"]["type"] in {"Polygon", "MultiPolygon"}


def test_an_unknown_tract_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/v1/tracts/999")
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_an_unknown_path_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/v1/nowhere")
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_a_wrong_method_is_a_json_405(client: FlaskClient) -> None:
    response = client.delete("/v1/tracts/lookup")
    assert response.status_code == 405 and response.json["error"] == "method_not_allowed"


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready", "tracts": 107}


def test_the_layer_loads_lazily_from_settings(italy_provinces: Path) -> None:
    app = create_app(Settings(tracts=str(italy_provinces), tract_id_field="sigla_provincia"))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/v1/tracts/lookup?lat=45.4642&lon=9.19")
    assert response.json["tract"] == {"id": "MI", "name": "Milano"}


def test_an_unreadable_layer_makes_the_service_unready(tmp_path: Path) -> None:
    client = create_app(Settings(tracts=str(tmp_path / "absent.geojson"))).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json["error"] == "unavailable"
    assert client.get("/v1/tracts/lookup?lat=45&lon=9").status_code == 503


def test_a_bad_id_field_setting_makes_the_service_unready(italy_provinces: Path) -> None:
    settings = Settings(tracts=str(italy_provinces), tract_id_field="nope")
    response = create_app(settings).test_client().get("/readyz")
    assert response.status_code == 503 and "codice_provincia" in response.json["message"]


def test_the_geo_process_never_imports_tensorflow_or_keras(italy_provinces: Path) -> None:
    code = (
        "import sys\n"
        "import services.geo.wsgi\n"
        "services.geo.wsgi.app.test_client().get('/v1/tracts/lookup?lat=45.4642&lon=9.19')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras'})\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT), str(PROJECT / "src")])}
    env["TRACTCAST_TRACTS"] = str(italy_provinces)

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr


def test_a_followed_layer_is_replaced_only_by_a_file_that_loads(tmp_path: Path) -> None:
    _, tracts = ensure_demo_data(Settings(demo_dir=tmp_path / "demo"))
    layer = json.loads(Path(tracts).read_text())
    for feature in layer["features"]:
        feature["properties"]["name"] = f"New {feature['properties']['name']}"
    renamed = tmp_path / "renamed.geojson"
    renamed.write_text(json.dumps(layer))
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    named = [Path(tracts), broken, broken, renamed]
    holder = IndexHolder(
        lambda: named[0] if len(named) == 1 else named.pop(0),
        lambda path: TractIndex.from_file(path),
        follow_every=0.0,
    )
    first = holder.get()
    deadline = time.monotonic() + 20
    while holder.get() is first and time.monotonic() < deadline:
        time.sleep(0.01)  # each get() starts a look, off this thread, if none is running
    assert len(named) == 1  # it looked at the broken file, kept the first layer, looked again
    assert holder.get().tracts[0].name == f"New {first.tracts[0].name}"


def test_a_replaced_layer_copy_is_freed_with_the_texts_rendered_from_it(tmp_path: Path) -> None:
    """A geo replica following the S3 mirror swaps in each new layer copy: the replica and
    outline texts rendered from an old one must not keep it (a census layer is ~400 MB)."""
    import gc
    import weakref

    from services.geo.views import outlines_json, replica_json

    _, tracts = ensure_demo_data(Settings(demo_dir=tmp_path / "demo"))
    index = TractIndex.from_file(tracts)
    first = replica_json(index)
    assert replica_json(index) is first and outlines_json(index) is outlines_json(index)
    newer = TractIndex.from_file(tracts)
    assert replica_json(newer) == first  # the same layer renders the same text and tag

    old = weakref.ref(index)
    del index
    gc.collect()
    assert old() is None
