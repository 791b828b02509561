"""The geo client against a real HTTP server on 127.0.0.1 that mimics the geo service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

from tractcast.errors import InvalidInput, Unavailable
from tractcast.geo.client import CellCache, GeoClient
from tractcast.geo.index import Tract, TractHit
from tractcast.logs import bind_request_id, unbind_request_id

MILAN = (45.4642, 9.19)
MILAN_EAST = (45.46, 9.35)  # in a cell the fake says a border crosses: never cached
SEA = (43.0, 5.0)


def fake_geo() -> Flask:
    """Milano is the box 45.3..45.6 x 9.0..9.4; everything else is outside."""
    app = Flask("fake_geo")

    def lookup(lat: float, lon: float) -> dict[str, str] | None:
        if 45.3 <= lat <= 45.6 and 9.0 <= lon <= 9.4:
            return {"id": "015", "name": "Milano"}
        return None

    @app.get("/v1/tracts/lookup")
    def one():  # type: ignore[no-untyped-def]
        app.config["calls"] += 1
        app.config["request_ids"].append(request.headers.get("X-Request-ID"))
        lat = request.args.get("lat", type=float)
        if lat is None or lat > 90:
            return jsonify(error="invalid_input", message="lat must be within -90..90"), 400
        lon = request.args.get("lon", type=float) or 0.0
        tract = lookup(lat, lon)
        if tract is None:
            return jsonify(error="not_found", message="outside every tract"), 404
        # Cells of 0.1 degree from (45.3, 9.0); the one touching Milano's eastern edge has a border.
        row, col = int((lat - 45.3) / 0.1), int((lon - 9.0) / 0.1)
        if col >= 3:
            return jsonify(tract=tract)
        cell = {"layer": app.config["layer"], "grid": GRID, "index": row * 4 + col}
        return jsonify(tract=tract, cell=cell)

    @app.post("/v1/tracts/lookup")
    def many():  # type: ignore[no-untyped-def]
        points = request.get_json()["points"]
        return jsonify(results=[{"tract": lookup(p["lat"], p["lon"])} for p in points])

    @app.get("/v1/tracts/radius")
    def radius():  # type: ignore[no-untyped-def]
        if request.args.get("lat", type=float, default=0.0) < 0:
            return "internal error", 500  # the southern hemisphere breaks this fake
        assert request.args["layout"] == "columns"
        if "radius" in app.config:
            return jsonify(app.config["radius"])
        return jsonify(ids=["015", "108"], names=["Milano", "Monza"], distance_km=[0.0, 11.2])

    @app.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        return jsonify(status="ready")

    app.config.update(calls=0, request_ids=[], layer="layer-1")
    return app


GRID = [9.0, 45.3, 0.1, 0.1, 4, 3]  # west, south, dx, dy, nx, ny


class GeoServer:
    def __init__(self) -> None:
        self.port = 0
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.app = fake_geo()
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self.server.port
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            assert self.thread is not None
            self.thread.join(5)
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def geo_server() -> Iterator[GeoServer]:
    server = GeoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(geo_server: GeoServer) -> Iterator[GeoClient]:
    client = GeoClient(geo_server.url, timeout=1.0)
    yield client
    client.close()


def test_tract_for_point_inside_a_tract(client: GeoClient) -> None:
    assert client.tract_for_point(*MILAN) == Tract("015", "Milano")


def test_tract_for_point_outside_every_tract_is_none(client: GeoClient) -> None:
    assert client.tract_for_point(*SEA) is None


def test_tracts_for_points_answers_each_point_in_order(client: GeoClient) -> None:
    assert client.tracts_for_points([MILAN, SEA, MILAN]) == [
        Tract("015", "Milano"),
        None,
        Tract("015", "Milano"),
    ]
    assert client.tracts_for_points([]) == []


def test_tracts_within_radius_returns_hits_with_distances(client: GeoClient) -> None:
    hits = client.tracts_within_radius(*MILAN, 20.0)

    assert hits == [
        TractHit(Tract("015", "Milano"), 0.0),
        TractHit(Tract("108", "Monza"), 11.2),
    ]


def test_input_geo_rejects_is_invalid_input_with_its_message(client: GeoClient) -> None:
    with pytest.raises(InvalidInput, match="lat must be within"):
        client.tract_for_point(91.0, 9.0)


def test_a_server_error_is_unavailable(client: GeoClient) -> None:
    with pytest.raises(Unavailable, match="geo service unavailable"):
        client.tracts_within_radius(-33.9, 18.4, 10.0)


def test_ready_when_geo_answers(client: GeoClient) -> None:
    assert client.ready()


def test_geo_down_is_unavailable_and_the_client_recovers(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.tract_for_point(*MILAN_EAST) is not None  # a pooled connection exists now

    geo_server.stop()
    with pytest.raises(Unavailable, match="geo service unavailable"):
        client.tract_for_point(*MILAN_EAST)
    with pytest.raises(Unavailable):
        client.tracts_for_points([MILAN])
    assert not client.ready()

    geo_server.start()  # same port
    assert client.tract_for_point(*MILAN_EAST) == Tract("015", "Milano")
    assert client.ready()


def test_a_slow_geo_times_out_as_unavailable() -> None:
    app = Flask("slow_geo")

    @app.get("/v1/tracts/lookup")
    def slow():  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return jsonify(tract={"id": "015", "name": "Milano"})

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        client = GeoClient(f"http://127.0.0.1:{server.port}", timeout=0.2)
        started = time.monotonic()
        with pytest.raises(Unavailable):
            client.tract_for_point(*MILAN)
        assert time.monotonic() - started < 0.9
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_nothing_listening_is_unavailable() -> None:
    client = GeoClient("http://127.0.0.1:9", timeout=0.5)

    with pytest.raises(Unavailable):
        client.tract_for_point(*MILAN)


def test_a_point_in_a_cell_geo_answered_for_needs_no_call(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano")
    assert client.tract_for_point(45.49, 9.19) == Tract("015", "Milano")  # same 0.1-degree cell
    assert geo_server.app.config["calls"] == 1
    assert client.tract_for_point(45.36, 9.11) == Tract("015", "Milano")  # another cell: a call
    assert geo_server.app.config["calls"] == 2


def test_a_cell_with_a_border_is_always_asked(geo_server: GeoServer, client: GeoClient) -> None:
    for _ in range(3):
        assert client.tract_for_point(45.46, 9.35) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 3


def test_cached_cells_expire_and_a_new_layer_empties_the_cache(geo_server: GeoServer) -> None:
    clock = [0.0]
    client = GeoClient(geo_server.url, cells=CellCache(ttl=10.0, clock=lambda: clock[0]))
    client.tract_for_point(45.46, 9.11)
    clock[0] = 9.0
    client.tract_for_point(45.46, 9.11)
    assert geo_server.app.config["calls"] == 1
    clock[0] = 20.0  # geo has not confirmed its grid for too long: ask again
    client.tract_for_point(45.46, 9.11)
    assert geo_server.app.config["calls"] == 2

    geo_server.app.config["layer"] = "layer-2"  # geo restarted with another layer
    client.tract_for_point(45.36, 9.21)
    client.tract_for_point(45.46, 9.11)  # cached under layer-1 only: asked again
    assert geo_server.app.config["calls"] == 4
    client.close()


def test_the_request_id_being_answered_goes_to_geo(
    geo_server: GeoServer, client: GeoClient
) -> None:
    token = bind_request_id("req-42")
    try:
        client.tract_for_point(45.46, 9.35)
    finally:
        unbind_request_id(token)
    client.tract_for_point(45.46, 9.36)
    assert geo_server.app.config["request_ids"] == ["req-42", None]


def test_a_malformed_radius_answer_is_unavailable(geo_server: GeoServer, client: GeoClient) -> None:
    geo_server.app.config["radius"] = {"ids": ["015", "108"], "names": ["Milano"]}

    with pytest.raises(Unavailable, match="geo service unavailable"):
        client.tracts_within_radius(*MILAN, 20.0)
