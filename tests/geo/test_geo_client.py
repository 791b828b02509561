"""The geo client against a real HTTP server on 127.0.0.1 that mimics the geo service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from flask import Flask, jsonify, request
from shapely.geometry import box
from werkzeug.serving import BaseWSGIServer, make_server

from tractcast.errors import InvalidInput, Unavailable
from tractcast.geo.cells import BORDER, CellAnswers, GridSpec
from tractcast.geo.client import GeoClient, LayerReplica
from tractcast.geo.index import Tract, TractHit, TractIndex
from tractcast.geo.layers import Layer
from tractcast.geo.outlines import Outlines
from tractcast.logs import bind_request_id, unbind_request_id

MILAN = (45.4642, 9.19)
MILAN_EAST = (45.46, 9.35)  # in a cell the fake's grid says a border crosses
MILAN_EDGE = (45.3, 9.35)  # on Milano's southern border, in that column: only geo can tell
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
        app.config["batches"].append(len(points))
        return jsonify(results=[{"tract": lookup(p["lat"], p["lon"])} for p in points])

    @app.get("/v1/tracts/replica")
    def replica():  # type: ignore[no-untyped-def]
        app.config["replica_requests"].append(request.headers.get("If-None-Match"))
        app.config["replica_gate"].wait(5)
        body = app.config.get("replica") or replica_of(app.config["layer"], app.config["name"])
        response = jsonify(body)
        response.set_etag(app.config["layer"])
        return response.make_conditional(request)

    @app.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        return jsonify(status="ready")

    app.config.update(
        calls=0, request_ids=[], batches=[], replica_requests=[], layer="layer-1", name="Milano"
    )
    app.config["replica_gate"] = threading.Event()
    app.config["replica_gate"].set()  # a test clears it to hold the copy back

    return app


GRID = [9.0, 45.3, 0.1, 0.1, 4, 3]  # west, south, dx, dy, nx, ny


POLYGONS = [box(9.0, 45.3, 9.4, 45.6), box(9.2, 45.62, 9.35, 45.7)]  # Milano, Monza


def replica_of(layer: str, name: str) -> dict[str, object]:
    """The fake's copy of its layer. The grid: Milano (position 0) everywhere but the eastern
    column; Monza (position 1) lies outside the grid. The outlines: both boxes."""
    cells = np.zeros((3, 4), dtype=np.int16)
    cells[:, 3] = BORDER
    answers = CellAnswers(GridSpec.from_list(GRID), cells.ravel())
    outlines = Outlines.of(np.array(POLYGONS), ["015", "108"])
    return {
        "layer": layer,
        "ids": ["015", "108"],
        "names": [name, "Monza"],
        **answers.to_dict(),
        "outlines": outlines.to_dict(),
    }


def geo_answers(lat: float, lon: float, radius_km: float) -> list[TractHit]:
    """What the geo service's own index answers over the fake's polygons."""
    properties = [{"code": "015", "name": "Milano"}, {"code": "108", "name": "Monza"}]
    index = TractIndex(Layer(POLYGONS, properties, 0))
    return [
        TractHit(hit.tract, round(hit.distance_km, 3))
        for hit in index.tracts_within_radius(lat, lon, radius_km)
    ]


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


def test_a_radius_is_answered_from_the_copy_exactly_as_geo_answers(
    geo_server: GeoServer, client: GeoClient
) -> None:
    hits = client.tracts_within_radius(*MILAN, 20.0)  # fetches the copy first

    assert hits.tract_hits() == geo_answers(*MILAN, 20.0)
    assert [hit.tract.id for hit in hits.tract_hits()] == ["015", "108"]
    assert hits.tract_hits()[1].distance_km > 15.0
    assert hits.layer == "layer-1"
    assert client.tracts_within_radius(45.66, 9.3, 5.0).tract_hits() == geo_answers(45.66, 9.3, 5.0)
    assert geo_server.app.config["replica_requests"] == [None]
    assert geo_server.app.config["calls"] == 0


def test_with_no_copy_and_geo_down_a_radius_is_unavailable() -> None:
    client = GeoClient("http://127.0.0.1:9", timeout=0.5)

    with pytest.raises(Unavailable, match="geo service unavailable"):
        client.tracts_within_radius(*MILAN, 20.0)


def test_input_geo_rejects_is_invalid_input_with_its_message(
    geo_server: GeoServer, client: GeoClient
) -> None:
    geo_server.app.config["replica_gate"].clear()  # no copy yet: the point goes to geo
    try:
        with pytest.raises(InvalidInput, match="lat must be within"):
            client.tract_for_point(91.0, 9.0)
    finally:
        geo_server.app.config["replica_gate"].set()


def test_ready_when_geo_answers(client: GeoClient) -> None:
    assert client.ready()


def test_geo_down_is_unavailable_and_the_client_recovers(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.tract_for_point(*MILAN_EDGE) is not None  # a pooled connection exists now

    geo_server.stop()
    with pytest.raises(Unavailable, match="geo service unavailable"):
        client.tract_for_point(*MILAN_EDGE)
    with pytest.raises(Unavailable):
        client.tracts_for_points([MILAN_EDGE])
    assert not client.ready()

    geo_server.start()  # same port
    assert client.tract_for_point(*MILAN_EDGE) == Tract("015", "Milano")
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


def test_with_the_copy_held_points_off_borders_need_no_call(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.load_replica()

    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano")
    assert client.tract_for_point(45.36, 9.21) == Tract("015", "Milano")
    assert client.tract_for_point(*SEA) is None  # outside the grid: outside every tract
    assert geo_server.app.config["calls"] == 0


def test_in_a_cell_with_a_border_only_a_point_on_the_border_is_asked(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.load_replica()
    for _ in range(3):
        assert client.tract_for_point(*MILAN_EAST) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 0  # the outlines tell
    for _ in range(3):
        assert client.tract_for_point(*MILAN_EDGE) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 3


def test_a_batch_sends_geo_only_the_points_the_grid_cannot_answer(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.load_replica()

    tracts = client.tracts_for_points([MILAN, MILAN_EAST, SEA, (45.31, 9.01), MILAN_EAST])

    milano = Tract("015", "Milano")
    assert tracts == [milano, milano, None, milano, milano]
    assert geo_server.app.config["batches"] == [2]


def test_the_first_point_is_asked_while_the_copy_loads_in_the_background(
    geo_server: GeoServer, client: GeoClient
) -> None:
    geo_server.app.config["replica_gate"].clear()
    assert client.tract_for_point(*MILAN) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 1

    geo_server.app.config["replica_gate"].set()
    deadline = time.monotonic() + 5
    while not client.replica.loaded and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.tract_for_point(*MILAN) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 1


def test_a_worker_started_before_geo_holds_the_copy_once_geo_answers(
    geo_server: GeoServer,
) -> None:
    geo_server.stop()
    client = GeoClient(geo_server.url, replica=LayerReplica(ttl=0.2, retry=0.05))
    try:
        assert not client.load_replica_until_held()  # geo is not there yet

        geo_server.start()  # same port; nobody asks the client anything meanwhile
        deadline = time.monotonic() + 5
        while not client.replica.loaded and time.monotonic() < deadline:
            time.sleep(0.01)

        assert client.replica.loaded
        assert client.tracts_within_radius(*MILAN, 1.0).tract_hits()[0].tract.id == "015"
        assert geo_server.app.config["calls"] == 0
    finally:
        client.close()


def test_waiting_for_a_first_copy_stops_when_the_client_closes() -> None:
    client = GeoClient("http://127.0.0.1:9", timeout=0.2, replica=LayerReplica(retry=0.05))
    assert not client.load_replica_until_held()
    waiting = [t for t in threading.enumerate() if t.name == "geo-copy"]
    assert waiting

    client.close()

    for thread in waiting:
        thread.join(2)
    assert not any(thread.is_alive() for thread in waiting)


def test_the_copy_is_revalidated_by_etag_and_a_new_layer_replaces_it(
    geo_server: GeoServer,
) -> None:
    clock = [0.0]
    client = GeoClient(geo_server.url, replica=LayerReplica(ttl=10.0, clock=lambda: clock[0]))
    assert client.load_replica()
    assert not client.replica.due()
    clock[0] = 11.0
    assert client.replica.due()
    assert client.load_replica()  # 304: the copy held is still geo's layer
    assert geo_server.app.config["replica_requests"] == [None, '"layer-1"']

    geo_server.app.config.update(layer="layer-2", name="Milano città")  # geo's new layer
    clock[0] = 22.0
    assert client.load_replica()

    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano città")
    assert client.tracts_within_radius(*MILAN, 1.0).tract_hits() == [
        TractHit(Tract("015", "Milano città"), 0.0)
    ]
    assert geo_server.app.config["calls"] == 0
    client.close()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda copy: copy.update(cells=copy["cells"][:-8]), id="short cells"),
        pytest.param(lambda copy: copy.pop("outlines"), id="no outlines"),
        pytest.param(
            lambda copy: copy["outlines"].update(step=copy["outlines"]["count"]), id="steps"
        ),
        pytest.param(lambda copy: copy.update(ids=["015"], names=["Milano"]), id="one tract short"),
    ],
)
def test_a_malformed_copy_is_refused_and_geo_is_asked_instead(
    geo_server: GeoServer, client: GeoClient, damage: Any
) -> None:
    broken = replica_of("layer-1", "Milano")
    damage(broken)
    geo_server.app.config["replica"] = broken

    assert not client.load_replica()
    assert not client.replica.loaded
    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 1


@pytest.mark.parametrize("cell", [2, -3])
def test_a_copy_whose_grid_names_a_tract_the_layer_lacks_is_refused(cell: int) -> None:
    grid = replica_of("layer-1", "Milano")
    cells = np.zeros(12, dtype=np.int16)
    cells[5] = cell
    grid.update(CellAnswers(GridSpec.from_list(GRID), cells).to_dict())
    replica = LayerReplica()

    with pytest.raises(ValueError, match="does not have"):
        replica.replace(grid, '"layer-1"')
    assert not replica.loaded


def test_with_geo_down_the_copy_still_answers_and_borders_are_unavailable(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.load_replica()
    geo_server.stop()

    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano")
    assert client.tracts_within_radius(*MILAN, 20.0).tract_hits() == geo_answers(*MILAN, 20.0)
    assert client.tract_for_point(*MILAN_EAST) == Tract("015", "Milano")
    with pytest.raises(Unavailable):
        client.tract_for_point(*MILAN_EDGE)
    assert not client.load_replica()  # the check fails, the copy stays
    assert client.replica.loaded


def test_the_request_id_being_answered_goes_to_geo(
    geo_server: GeoServer, client: GeoClient
) -> None:
    token = bind_request_id("req-42")
    try:
        client.tract_for_point(*MILAN_EDGE)
    finally:
        unbind_request_id(token)
    client.tract_for_point(45.3, 9.36)  # on the same border
    assert geo_server.app.config["request_ids"] == ["req-42", None]
