"""HTTP client of the geo service: the API maps points to tracts through it."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from tractcast.errors import InvalidInput, PayloadTooLarge, Unavailable
from tractcast.geo.cells import GridSpec
from tractcast.geo.index import Tract, TractHit
from tractcast.logs import REQUEST_ID_HEADER, current_request_id

UNAVAILABLE_MESSAGE = "geo service unavailable"
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


class CellCache:
    """Geo's answers for grid cells no border crosses: any point in such a cell has the same
    tract, so a later point there is answered without a call.

    Geo names the cell, its grid and a fingerprint of its layer with each single-point answer;
    the cell of a new point is computed with the same GridSpec arithmetic, so a hit gives
    exactly the answer geo would give. The grid is trusted for `ttl` seconds after geo last
    confirmed it; the next call after that goes to geo, and a new layer empties the cache.
    """

    def __init__(
        self, ttl: float = 30.0, max_cells: int = 100_000, clock: Any = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_cells = max_cells
        self._clock = clock
        self._layer: str | None = None
        self._grid: GridSpec | None = None
        self._confirmed = float("-inf")
        self._tracts: dict[int, Tract] = {}

    def get(self, lat: float, lon: float) -> Any:
        """The cached tract for the point, or _MISS."""
        grid = self._grid
        if grid is None or self._clock() - self._confirmed > self.ttl:
            return _MISS
        cell = grid.cell(lat, lon)
        return _MISS if cell is None else self._tracts.get(cell, _MISS)

    def put(self, described: Any, tract: Tract) -> None:
        """Remember geo's answer for the cell it described (ignored when malformed)."""
        try:
            layer, grid = str(described["layer"]), GridSpec.from_list(described["grid"])
            cell = int(described["index"])
        except (TypeError, KeyError, ValueError):
            return
        if layer != self._layer or grid != self._grid or len(self._tracts) >= self.max_cells:
            self._tracts = {}
            self._layer, self._grid = layer, grid
        self._tracts[cell] = tract
        self._confirmed = self._clock()


class GeoClient:
    """Talks to the geo service over one keep-alive connection per thread; outages are
    `Unavailable`.

    Plain http.client rather than a session library: on loopback its per-call overhead is the
    larger part of a single-point forecast. A connection found closed (geo restarted, or
    dropped an idle connection) is replaced once, so the first call after geo comes back
    succeeds; a timeout is never retried. Single-point answers geo marks as valid for a whole
    grid cell are kept in `cells` (see CellCache): repeated and nearby points cost no call.
    """

    def __init__(self, base_url: str, timeout: float = 2.0, cells: CellCache | None = None) -> None:
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
        self.cells = cells if cells is not None else CellCache()

    def tract_for_point(self, lat: float, lon: float) -> Tract | None:
        """The tract containing the point, or None when it lies outside every tract."""
        cached = self.cells.get(lat, lon)
        if cached is not _MISS:
            return cached  # type: ignore[no-any-return]
        status, data = self._request("GET", "/v1/tracts/lookup", params={"lat": lat, "lon": lon})
        if status == 404:
            return None
        body = self._json(status, data)
        tract = _tract(body.get("tract"))
        if tract is not None and "cell" in body:
            self.cells.put(body["cell"], tract)
        return tract

    def tracts_for_points(self, points: Sequence[tuple[float, float]]) -> list[Tract | None]:
        """One tract (or None) per point, in order, with a single batch request."""
        if not points:
            return []
        body = {"points": [{"lat": lat, "lon": lon} for lat, lon in points]}
        results = self._json(*self._request("POST", "/v1/tracts/lookup", json_body=body)).get(
            "results"
        )
        if not isinstance(results, list) or len(results) != len(points):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return [_tract(item.get("tract")) if isinstance(item, dict) else None for item in results]

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> list[TractHit]:
        """Tracts whose polygon meets the circle, with their distance from the center."""
        params = {"lat": lat, "lon": lon, "radius_km": radius_km, "layout": "columns"}
        body = self._json(*self._request("GET", "/v1/tracts/radius", params=params))
        ids, names, distances = body.get("ids"), body.get("names"), body.get("distance_km")
        if not (isinstance(ids, list) and isinstance(names, list) and isinstance(distances, list)):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        if not len(ids) == len(names) == len(distances):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        if not all(type(v) is str for v in ids) or not all(type(v) is str for v in names):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        try:
            return [
                TractHit(Tract(tract_id, name), float(distance))
                for tract_id, name, distance in zip(ids, names, distances, strict=True)
            ]
        except (TypeError, ValueError) as exc:
            raise Unavailable(UNAVAILABLE_MESSAGE) from exc

    def ready(self) -> bool:
        """Whether geo answers its own readiness check."""
        try:
            status, _ = self._exchange("GET", "/readyz", None, None)
        except Unavailable:
            return False
        return status == 200

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
        status, data = self._exchange(method, path, body, current_request_id())
        if status in (400, 413):
            # Geo refused the input itself: pass its (client-safe) message on.
            error = InvalidInput if status == 400 else PayloadTooLarge
            raise error(_message(data) or "geo service rejected the input")
        if status != 404 and not 200 <= status < 300:
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return status, data

    def _exchange(
        self, method: str, path: str, body: str | None, request_id: str | None
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
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
            return response.status, data
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
