"""HTTP client of the geo service: the API maps points to tracts through it."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from tractcast.errors import InvalidInput, PayloadTooLarge, Unavailable
from tractcast.geo.cells import BORDER, NO_TRACT, CellAnswers
from tractcast.geo.index import RadiusHits, Tract
from tractcast.logs import REQUEST_ID_HEADER, current_request_id

log = logging.getLogger(__name__)
UNAVAILABLE_MESSAGE = "geo service unavailable"
GRID_PATH = "/v1/tracts/lookup/grid"
_MISS = object()
# Failures that mean "this connection is gone", not "geo is slow": worth one new connection.
_RECONNECT = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)


class _Connection(http.client.HTTPConnection):
    """http.client sends a request's headers and body in two writes: without TCP_NODELAY the
    body waits for the ACK of the headers, which the server delays (40 ms on Linux)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _SecureConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GridReplica:
    """A copy of geo's lookup grid: any point in a cell no border crosses is answered here.

    Geo sends the answer of every grid cell with the layer's tracts (GET /v1/tracts/lookup/grid);
    the cell of a point is computed with the same GridSpec arithmetic as geo's, so an answer
    from here is exactly the answer geo would give. Points in cells a border crosses still go
    to geo's exact test. The copy is re-validated every `ttl` seconds with a conditional GET,
    off the request's path; a new layer or grid replaces it, and it keeps answering while geo
    is down (a new layer can only come from a geo that answers).
    """

    def __init__(self, ttl: float = 30.0, retry: float = 1.0, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.retry = retry  # while no copy is held, a failed fetch is tried again this soon
        self._clock = clock
        self.etag: str | None = None
        # One tuple swapped whole: a reader never pairs one grid's cells with another's tracts.
        self._state: tuple[CellAnswers, list[Tract], str] | None = None
        self._next_check = float("-inf")
        self._refreshing = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._state is not None

    @property
    def layer(self) -> tuple[str, list[Tract]] | None:
        """The fingerprint of the copied layer and its tracts by position; None before a copy."""
        state = self._state
        return None if state is None else (state[2], state[1])

    def tract_for_point(self, lat: float, lon: float) -> Any:
        """The point's tract (None outside every tract), or _MISS when geo must answer."""
        state = self._state
        if state is None:
            return _MISS
        position, _ = state[0].position(lat, lon)
        if position == BORDER:
            return _MISS
        return None if position == NO_TRACT else state[1][position]

    def tracts_for_points(self, lats: np.ndarray, lons: np.ndarray) -> list[Any]:
        """tract_for_point for many points with one array lookup."""
        state = self._state
        if state is None:
            return [_MISS] * len(lats)
        answers, tracts, _ = state
        return [
            _MISS if position == BORDER else None if position == NO_TRACT else tracts[position]
            for position in answers.positions(lats, lons).tolist()
        ]

    def due(self) -> bool:
        """Whether the copy should be checked against geo again (or fetched at all)."""
        return self._clock() >= self._next_check

    def begin_refresh(self, wait: float = 0.0) -> bool:
        """Claim the one refresh allowed at a time, waiting up to `wait` seconds for a running
        one to end; False when none could be claimed."""
        return (
            self._refreshing.acquire(timeout=wait) if wait > 0 else self._refreshing.acquire(False)
        )

    def end_refresh(self, confirmed: bool) -> None:
        """Release the claim. After a failure a copy held is checked again a ttl later too: an
        unreachable geo costs one call per ttl, not one per request."""
        wait = self.ttl if confirmed or self._state is not None else self.retry
        self._next_check = self._clock() + wait
        self._refreshing.release()
        if not confirmed:
            log.warning("geo's lookup grid could not be fetched; the copy held (if any) is kept")

    def replace(self, body: Any, etag: str | None) -> None:
        """Take a grid geo sent; ValueError (and nothing changed) when it is malformed."""
        if not isinstance(body, dict):
            raise ValueError("the grid is not a JSON object")
        answers = CellAnswers.from_dict(body)
        ids, names = body.get("ids"), body.get("names")
        if not (isinstance(ids, list) and isinstance(names, list) and len(ids) == len(names)):
            raise ValueError("the grid's tracts are not two lists of one length")
        layer = body.get("layer")
        if not isinstance(layer, str):
            raise ValueError("the grid names no layer")
        cells = answers.cells
        if int(cells.max(initial=NO_TRACT)) >= len(ids) or int(cells.min(initial=BORDER)) < BORDER:
            raise ValueError("the grid names a tract the layer does not have")
        tracts = [Tract(str(key), str(name)) for key, name in zip(ids, names, strict=True)]
        self._state, self.etag = (answers, tracts, layer), etag


class GeoClient:
    """Talks to the geo service over one keep-alive connection per thread; outages are
    `Unavailable`.

    Plain http.client rather than a session library: on loopback its per-call overhead is the
    larger part of a single-point forecast. A connection found closed (geo restarted, or
    dropped an idle connection) is replaced once, so the first call after geo comes back
    succeeds; a timeout is never retried. Points in grid cells no border crosses are answered
    from `grid`, a copy of geo's lookup grid (see GridReplica): most points cost no call.
    """

    def __init__(
        self, base_url: str, timeout: float = 2.0, grid: GridReplica | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"geo service URL must be http(s)://host[:port], got {base_url!r}")
        self._secure = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._secure else 80)
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self.grid = grid if grid is not None else GridReplica()

    def tract_for_point(self, lat: float, lon: float) -> Tract | None:
        """The tract containing the point, or None when it lies outside every tract."""
        self._refresh_grid_if_due()
        known = self.grid.tract_for_point(lat, lon)
        if known is not _MISS:
            return known  # type: ignore[no-any-return]
        status, data = self._request("GET", "/v1/tracts/lookup", params={"lat": lat, "lon": lon})
        if status == 404:
            return None
        return _tract(self._json(status, data).get("tract"))

    def tracts_for_points(self, points: Sequence[tuple[float, float]]) -> list[Tract | None]:
        """One tract (or None) per point, in order; the points the grid cannot answer go to geo
        in a single batch request."""
        if not points:
            return []
        self._refresh_grid_if_due()
        coordinates = np.array(points, dtype=np.float64).reshape(len(points), 2)
        tracts = self.grid.tracts_for_points(coordinates[:, 0], coordinates[:, 1])
        asked = [i for i, tract in enumerate(tracts) if tract is _MISS]
        if asked:
            body = {"points": [{"lat": points[i][0], "lon": points[i][1]} for i in asked]}
            results = self._json(*self._request("POST", "/v1/tracts/lookup", json_body=body))
            answers = results.get("results")
            if not isinstance(answers, list) or len(answers) != len(asked):
                raise Unavailable(UNAVAILABLE_MESSAGE)
            for i, item in zip(asked, answers, strict=True):
                tracts[i] = _tract(item.get("tract")) if isinstance(item, dict) else None
        return tracts

    def load_grid(self) -> bool:
        """Fetch (or re-validate) geo's lookup grid now, in this thread; False when geo did not
        give one (the grid is then tried again a ttl later)."""
        if not self.grid.begin_refresh():
            return False
        confirmed = False
        try:
            confirmed = self._fetch_grid()
        finally:
            self.grid.end_refresh(confirmed)
        return confirmed

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> RadiusHits:
        """Tracts whose polygon meets the circle, nearest first, with their distance from the
        center. Geo names them by position in its layer, whose tracts come with the grid: the
        grid is fetched first when none is held, and again when geo's layer has changed."""
        params = {"lat": lat, "lon": lon, "radius_km": radius_km, "layout": "positions"}
        held = self.grid.layer or self._fetch_grid_now(None)
        body = self._json(*self._request("GET", "/v1/tracts/radius", params=params))
        if body.get("layer") != held[0]:
            held = self._fetch_grid_now(held[0])
            body = self._json(*self._request("GET", "/v1/tracts/radius", params=params))
            if body.get("layer") != held[0]:
                raise Unavailable(UNAVAILABLE_MESSAGE)
        layer, tracts = held
        positions, metres = _integers(body.get("positions")), _integers(body.get("distance_m"))
        if positions is None or metres is None or len(positions) != len(metres):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        if len(positions) and not (positions.min() >= 0 and positions.max() < len(tracts)):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        if len(metres) and metres.min() < 0:
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return RadiusHits(layer, tracts, positions.tolist(), (metres / 1000).tolist())

    def _fetch_grid_now(self, stale: str | None) -> tuple[str, list[Tract]]:
        """The grid's layer and tracts, fetched in this thread unless another thread has just
        replaced the layer `stale` (None: no grid held); Unavailable when geo gives none."""
        if not self.grid.begin_refresh(wait=2 * self.timeout):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        confirmed = False
        try:
            held = self.grid.layer
            if held is not None and held[0] != stale:
                confirmed = True
                return held
            confirmed = self._fetch_grid()
        finally:
            self.grid.end_refresh(confirmed)
        held = self.grid.layer
        if not confirmed or held is None:
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return held

    def ready(self) -> bool:
        """Whether geo answers its own readiness check."""
        try:
            status, _, _ = self._exchange("GET", "/readyz", None, None)
        except Unavailable:
            return False
        return status == 200

    def _refresh_grid_if_due(self) -> None:
        """Start a check of the grid in the background when it is due: requests never wait."""
        if self.grid.due() and self.grid.begin_refresh():
            threading.Thread(target=self._refresh_grid, name="geo-grid", daemon=True).start()

    def _refresh_grid(self) -> None:
        confirmed = False
        try:
            confirmed = self._fetch_grid()
        finally:
            connection = getattr(self._local, "connection", None)
            if connection is not None:  # this thread ends: so does its connection
                self._discard(connection)
            self.grid.end_refresh(confirmed)

    def _fetch_grid(self) -> bool:
        etag = self.grid.etag
        headers = {"If-None-Match": etag} if etag else {}
        try:
            status, data, etag = self._exchange("GET", GRID_PATH, None, None, headers)
        except Unavailable:
            return False
        if status == 304:
            return True
        if status != 200:
            return False
        try:
            self.grid.replace(json.loads(data), etag)
        except ValueError:
            log.exception("geo sent a lookup grid that cannot be used")
            return False
        return True

    def close(self) -> None:
        """Close every thread's connection (each reopens on its next call)."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, float | str] | None = None,
        json_body: Any = None,
    ) -> tuple[int, bytes]:
        if params:
            path = f"{path}?" + "&".join(f"{key}={_query(value)}" for key, value in params.items())
        body = None if json_body is None else json.dumps(json_body, separators=(",", ":"))
        status, data, _ = self._exchange(method, path, body, current_request_id())
        if status in (400, 413):
            # Geo refused the input itself: pass its (client-safe) message on.
            error = InvalidInput if status == 400 else PayloadTooLarge
            raise error(_message(data) or "geo service rejected the input")
        if status != 404 and not 200 <= status < 300:
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return status, data

    def _exchange(
        self,
        method: str,
        path: str,
        body: str | None,
        request_id: str | None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str | None]:
        """(status, body, ETag) of one request, on this thread's connection."""
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = "application/json"
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id  # one id from nginx through api and geo
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, self._prefix + path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except _RECONNECT as exc:
                self._discard(connection)
                if attempt == 2:
                    raise Unavailable(UNAVAILABLE_MESSAGE) from exc
                continue
            except (OSError, http.client.HTTPException) as exc:  # timeouts included
                self._discard(connection)
                raise Unavailable(UNAVAILABLE_MESSAGE) from exc
            if response.will_close:
                self._discard(connection)
            return response.status, data, response.getheader("ETag")
        raise Unavailable(UNAVAILABLE_MESSAGE)  # not reached

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            cls = _SecureConnection if self._secure else _Connection
            connection = cls(self._host, self._port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._open.add(connection)
        return connection

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._local.connection = None
        with self._lock:
            self._open.discard(connection)

    @staticmethod
    def _json(status: int, data: bytes) -> dict[str, Any]:
        if status == 404:
            raise Unavailable(UNAVAILABLE_MESSAGE)
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise Unavailable(UNAVAILABLE_MESSAGE) from exc
        if not isinstance(body, dict):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return body


def _query(value: float | str) -> str:
    """A query value: floats in full (repr round-trips), text percent-encoded."""
    return quote(value, safe="") if isinstance(value, str) else repr(value)


def _integers(value: Any) -> np.ndarray | None:
    """A JSON list of integers as an array; None for anything else (floats and booleans too)."""
    if not isinstance(value, list):
        return None
    if not value:
        return np.zeros(0, dtype=np.int64)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    return array if array.dtype.kind == "i" and array.ndim == 1 else None


def _tract(item: Any) -> Tract | None:
    if not isinstance(item, dict) or item.get("id") is None:
        return None
    return Tract(id=str(item["id"]), name=str(item.get("name") or item["id"]))


def _message(data: bytes) -> str | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else None
