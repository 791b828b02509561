"""The geo client against a real HTTP server on 127.0.0.1 that mimics the geo service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

from tractcast.errors import InvalidInput, Unavailable
from tractcast.geo.client import GeoClient
from tractcast.geo.index import Tract, TractHit

MILAN = (45.4642, 9.19)
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
        lat = request.args.get("lat", type=float)
        if lat is None or lat > 90:
            return jsonify(error="invalid_input", message="lat must be within -90..90"), 400
        tract = lookup(lat, request.args.get("lon", type=float) or 0.0)
        if tract is None:
            return jsonify(error="not_found", message="outside every tract"), 404
        return jsonify(tract=tract)

    @app.post("/v1/tracts/lookup")
    def many():  # type: ignore[no-untyped-def]
        points = request.get_json()["points"]
        return jsonify(results=[{"tract": lookup(p["lat"], p["lon"])} for p in points])

    @app.get("/v1/tracts/radius")
    def radius():  # type: ignore[no-untyped-def]
        if request.args.get("lat", type=float, default=0.0) < 0:
            return "internal error", 500  # the southern hemisphere breaks this fake
        return jsonify(
            tracts=[
                {"id": "015", "name": "Milano", "distance_km": 0.0},
                {"id": "108", "name": "Monza", "distance_km": 11.2},
            ]
        )

    @app.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        return jsonify(status="ready")

    return app


class GeoServer:
    def __init__(self) -> None:
        self.port = 0
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, fake_geo(), threaded=True)
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
    assert client.tract_for_point(*MILAN) is not None  # a pooled connection exists now

    geo_server.stop()
    with pytest.raises(Unavailable, match="geo service unavailable"):
        client.tract_for_point(*MILAN)
    with pytest.raises(Unavailable):
        client.tracts_for_points([MILAN])
    assert not client.ready()

    geo_server.start()  # same port
    assert client.tract_for_point(*MILAN) == Tract("015", "Milano")
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
