"""The geo client against a real HTTP server on 127.0.0.1 that mimics the geo service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

from tractcast.errors import InvalidInput, Unavailable
from tractcast.geo.cells import BORDER, CellAnswers, GridSpec
from tractcast.geo.client import GeoClient, GridReplica
from tractcast.geo.index import Tract, TractHit
from tractcast.logs import bind_request_id, unbind_request_id

MILAN = (45.4642, 9.19)
MILAN_EAST = (45.46, 9.35)  # in a cell the fake's grid says a border crosses: always asked
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

    @app.get("/v1/tracts/lookup/grid")
    def grid():  # type: ignore[no-untyped-def]
        app.config["grid_requests"].append(request.headers.get("If-None-Match"))
        app.config["grid_gate"].wait(5)
        body = app.config.get("grid") or grid_of(app.config["layer"], app.config["name"])
        response = jsonify(body)
        response.set_etag(app.config["layer"])
        return response.make_conditional(request)

    @app.get("/v1/tracts/radius")
    def radius():  # type: ignore[no-untyped-def]
        if request.args.get("lat", type=float, default=0.0) < 0:
            return "internal error", 500  # the southern hemisphere breaks this fake
        assert request.args["layout"] == "positions"
        if "radius" in app.config:
            return jsonify(app.config["radius"])
        layer = app.config.get("radius_layer", app.config["layer"])
        return jsonify(layer=layer, positions=[0, 1], distance_m=[0, 11_200])

    @app.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        return jsonify(status="ready")

    app.config.update(
        calls=0, request_ids=[], batches=[], grid_requests=[], layer="layer-1", name="Milano"
    )
    app.config["grid_gate"] = threading.Event()
    app.config["grid_gate"].set()  # a test clears it to hold the grid back

    return app


GRID = [9.0, 45.3, 0.1, 0.1, 4, 3]  # west, south, dx, dy, nx, ny


def grid_of(layer: str, name: str) -> dict[str, object]:
    """The fake's lookup grid: Milano (position 0) everywhere but the eastern column; Monza
    (position 1) lies outside the grid."""
    cells = np.zeros((3, 4), dtype=np.int16)
    cells[:, 3] = BORDER
    answers = CellAnswers(GridSpec.from_list(GRID), cells.ravel())
    return {"layer": layer, "ids": ["015", "108"], "names": [name, "Monza"], **answers.to_dict()}


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
    hits = client.tracts_within_radius(*MILAN, 20.0)  # fetches the grid: it names the tracts

    assert hits.tract_hits() == [
        TractHit(Tract("015", "Milano"), 0.0),
        TractHit(Tract("108", "Monza"), 11.2),
    ]
    assert hits.layer == "layer-1"


def test_a_radius_from_a_new_layer_takes_its_grid_first(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.load_grid()
    geo_server.app.config.update(layer="layer-2", name="Milano città")

    hits = client.tracts_within_radius(*MILAN, 20.0)

    assert hits.tract_hits()[0] == TractHit(Tract("015", "Milano città"), 0.0)
    assert geo_server.app.config["grid_requests"] == [None, '"layer-1"']


def test_a_radius_from_a_layer_geo_gives_no_grid_for_is_unavailable(
    geo_server: GeoServer, client: GeoClient
) -> None:
    geo_server.app.config["radius_layer"] = "layer-x"

    with pytest.raises(Unavailable, match="geo service unavailable"):
        client.tracts_within_radius(*MILAN, 20.0)


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
        client.tracts_for_points([MILAN_EAST])
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


def test_with_the_grid_loaded_points_off_borders_need_no_call(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.load_grid()

    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano")
    assert client.tract_for_point(45.36, 9.21) == Tract("015", "Milano")
    assert client.tract_for_point(*SEA) is None  # outside the grid: outside every tract
    assert geo_server.app.config["calls"] == 0


def test_a_cell_with_a_border_is_always_asked(geo_server: GeoServer, client: GeoClient) -> None:
    assert client.load_grid()
    for _ in range(3):
        assert client.tract_for_point(*MILAN_EAST) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 3


def test_a_batch_sends_geo_only_the_points_the_grid_cannot_answer(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.load_grid()

    tracts = client.tracts_for_points([MILAN, MILAN_EAST, SEA, (45.31, 9.01), MILAN_EAST])

    milano = Tract("015", "Milano")
    assert tracts == [milano, milano, None, milano, milano]
    assert geo_server.app.config["batches"] == [2]


def test_the_first_point_is_asked_while_the_grid_loads_in_the_background(
    geo_server: GeoServer, client: GeoClient
) -> None:
    geo_server.app.config["grid_gate"].clear()
    assert client.tract_for_point(*MILAN) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 1

    geo_server.app.config["grid_gate"].set()
    deadline = time.monotonic() + 5
    while not client.grid.loaded and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.tract_for_point(*MILAN) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 1


def test_the_grid_is_revalidated_by_etag_and_a_new_layer_replaces_it(
    geo_server: GeoServer,
) -> None:
    clock = [0.0]
    client = GeoClient(geo_server.url, grid=GridReplica(ttl=10.0, clock=lambda: clock[0]))
    assert client.load_grid()
    assert not client.grid.due()
    clock[0] = 11.0
    assert client.grid.due()
    assert client.load_grid()  # 304: the copy held is still geo's grid
    assert geo_server.app.config["grid_requests"] == [None, '"layer-1"']

    geo_server.app.config.update(layer="layer-2", name="Milano città")  # geo's new layer
    clock[0] = 22.0
    assert client.load_grid()

    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano città")
    assert geo_server.app.config["calls"] == 0
    client.close()


def test_a_malformed_grid_is_refused_and_geo_is_asked_instead(
    geo_server: GeoServer, client: GeoClient
) -> None:
    broken = grid_of("layer-1", "Milano")
    broken["cells"] = broken["cells"][:-8]  # type: ignore[index]
    geo_server.app.config["grid"] = broken

    assert not client.load_grid()
    assert not client.grid.loaded
    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano")
    assert geo_server.app.config["calls"] == 1


@pytest.mark.parametrize("cell", [2, -3])
def test_a_grid_naming_a_tract_the_layer_lacks_is_refused(cell: int) -> None:
    grid = grid_of("layer-1", "Milano")
    cells = np.zeros(12, dtype=np.int16)
    cells[5] = cell
    grid.update(CellAnswers(GridSpec.from_list(GRID), cells).to_dict())
    replica = GridReplica()

    with pytest.raises(ValueError, match="does not have"):
        replica.replace(grid, '"layer-1"')
    assert not replica.loaded


def test_with_geo_down_the_grid_still_answers_and_borders_are_unavailable(
    geo_server: GeoServer, client: GeoClient
) -> None:
    assert client.load_grid()
    geo_server.stop()

    assert client.tract_for_point(45.46, 9.11) == Tract("015", "Milano")
    with pytest.raises(Unavailable):
        client.tract_for_point(*MILAN_EAST)
    assert not client.load_grid()  # the check fails, the copy stays
    assert client.grid.loaded


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


@pytest.mark.parametrize(
    "answer",
    [
        {"positions": [0, 1], "distance_m": [0]},
        {"positions": [0, 2], "distance_m": [0, 5]},
        {"positions": [-1], "distance_m": [0]},
        {"positions": [0], "distance_m": [-3]},
        {"positions": [0], "distance_m": [0.5]},
        {"positions": ["0"], "distance_m": [0]},
        {"positions": None, "distance_m": []},
    ],
)
def test_a_malformed_radius_answer_is_unavailable(
    geo_server: GeoServer, client: GeoClient, answer: dict[str, object]
) -> None:
    geo_server.app.config["radius"] = {"layer": "layer-1", **answer}

    with pytest.raises(Unavailable, match="geo service unavailable"):
        client.tracts_within_radius(*MILAN, 20.0)
