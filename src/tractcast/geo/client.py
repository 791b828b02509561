"""HTTP client of the geo service: the API maps points to tracts through it."""

from __future__ import annotations

import http.client
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import numpy as np

from tractcast.errors import InvalidInput, PayloadTooLarge, Unavailable
from tractcast.geo.cells import BORDER, NO_TRACT, CellAnswers
from tractcast.geo.index import RadiusHits, Tract
from tractcast.geo.outlines import Outlines
from tractcast.geo.packing import unpack
from tractcast.heap import release_freed_memory
from tractcast.logs import REQUEST_ID_HEADER, current_request_id

log = logging.getLogger(__name__)
UNAVAILABLE_MESSAGE = "geo service unavailable"
REPLICA_PATH = "/v1/tracts/replica"
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


class LayerCopy(NamedTuple):
    """What a LayerReplica holds: one copy of geo's layer, swapped whole, so a reader never
    pairs one layer's cells or vertices with another's tracts."""

    layer: str  # geo's fingerprint of the layer
    tracts: list[Tract]  # by position
    answers: CellAnswers
    outlines: Outlines
    areas_km2: np.ndarray  # by position; NaN when geo sent none

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> RadiusHits:
        positions, distances = self.outlines.within_radius(lat, lon, radius_km)
        return RadiusHits(self.layer, self.tracts, positions, distances)


class LayerReplica:
    """The API's copy of geo's layer, kept current: it holds one LayerCopy (`copy`) of what geo
    knows of its layer, the lookup grid's cells and the rings' vertices (GET /v1/tracts/replica),
    and answers without geo.

    A point in a cell no border crosses takes the cell's answer, computed with the same GridSpec
    arithmetic as geo's, so it is exactly geo's answer. A single point in a cell a border
    crosses is tested against the rings' vertices (Outlines.position_holding), and only a point
    within a hair of a border (or a batch's points in such cells) goes to geo's exact test.
    Radius queries run the same code over the same vertices as geo's (Outlines), so they too
    answer as geo would, and no call is made. The copy is re-validated
    every `ttl` seconds with a conditional GET, off the request's path; a new layer replaces it,
    and it keeps answering while geo is down (a new layer can only come from a geo that answers).
    """

    def __init__(self, ttl: float = 30.0, retry: float = 1.0, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.retry = retry  # while no copy is held, a failed fetch is tried again this soon
        self._clock = clock
        self.etag: str | None = None
        self.copy: LayerCopy | None = None
        self._next_check = float("-inf")
        self._refreshing = threading.Lock()
        self._positions: tuple[LayerCopy | None, dict[str, int]] = (None, {})

    @property
    def loaded(self) -> bool:
        return self.copy is not None

    def tract_for_point(self, lat: float, lon: float) -> Any:
        """The point's tract (None outside every tract), or _MISS when geo must answer."""
        copy = self.copy
        if copy is None:
            return _MISS
        position, _ = copy.answers.position(lat, lon)
        if position == BORDER:  # the rings' vertices tell, unless the point is on a border
            held = copy.outlines.position_holding(lat, lon)
            if held is None:
                return _MISS
            position = held
        return None if position == NO_TRACT else copy.tracts[position]

    def tracts_for_points(self, lats: np.ndarray, lons: np.ndarray) -> list[Any]:
        """tract_for_point for many points with one array lookup."""
        copy = self.copy
        if copy is None:
            return [_MISS] * len(lats)
        tracts = copy.tracts
        return [
            _MISS if position == BORDER else None if position == NO_TRACT else tracts[position]
            for position in copy.answers.positions(lats, lons).tolist()
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
        wait = self.ttl if confirmed or self.copy is not None else self.retry
        self._next_check = self._clock() + wait
        self._refreshing.release()
        if not confirmed:
            log.warning("geo's layer could not be copied; the copy held (if any) is kept")

    def replace(self, body: Any, etag: str | None) -> None:
        """Take the copy geo sent; ValueError (and nothing changed) when it is malformed."""
        if not isinstance(body, dict):
            raise ValueError("the replica is not a JSON object")
        answers = CellAnswers.from_dict(body)
        ids, names = body.get("ids"), body.get("names")
        if not (isinstance(ids, list) and isinstance(names, list) and len(ids) == len(names)):
            raise ValueError("the replica's tracts are not two lists of one length")
        fingerprint = body.get("layer")
        if not isinstance(fingerprint, str):
            raise ValueError("the replica names no layer")
        cells = answers.cells
        if int(cells.max(initial=NO_TRACT)) >= len(ids) or int(cells.min(initial=BORDER)) < BORDER:
            raise ValueError("the grid names a tract the layer does not have")
        tracts = [Tract(str(key), str(name)) for key, name in zip(ids, names, strict=True)]
        outlines = Outlines.from_dict(body.get("outlines"), [tract.id for tract in tracts])
        areas = body.get("areas_km2")  # absent from a geo older than this client
        areas_km2 = np.full(len(ids), np.nan) if areas is None else unpack(areas, "<f4", len(ids))
        self.copy = LayerCopy(fingerprint, tracts, answers, outlines, areas_km2)
        self.etag = etag

    def tract_area_km2(self, tract: Tract) -> float:
        """The tract's area in the copy held; inf when unknown (no copy, a tract the copy does
        not have, a geo that sent no areas). The positions by id are made on first need: only
        a point that several layers hold asks."""
        copy = self.copy
        if copy is None:
            return math.inf
        owner, positions = self._positions
        if owner is not copy:
            positions = {known.id: position for position, known in enumerate(copy.tracts)}
            self._positions = (copy, positions)
        position = positions.get(tract.id)
        area = math.nan if position is None else float(copy.areas_km2[position])
        return math.inf if math.isnan(area) else area


class GeoClient:
    """Talks to the geo service over one keep-alive connection per thread; outages are
    `Unavailable`.

    Plain http.client rather than a session library: on loopback its per-call overhead is the
    larger part of a single-point forecast. A connection found closed (geo restarted, or
    dropped an idle connection) is replaced once, so the first call after geo comes back
    succeeds; a timeout is never retried. Radius queries, and points not within a hair of a
    border, are answered from `replica`, a copy of geo's layer (see LayerReplica): nearly every
    single point and every radius cost no call.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 2.0,
        replica: LayerReplica | None = None,
        *,
        layer: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.layer = layer  # the layer asked of geo on every call (None: geo's first)
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
        self.replica = replica if replica is not None else LayerReplica()
        self._closed = threading.Event()

    def tract_for_point(self, lat: float, lon: float) -> Tract | None:
        """The tract containing the point, or None when it lies outside every tract."""
        self._refresh_replica_if_due()
        known = self.replica.tract_for_point(lat, lon)
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
        self._refresh_replica_if_due()
        coordinates = np.array(points, dtype=np.float64).reshape(len(points), 2)
        tracts = self.replica.tracts_for_points(coordinates[:, 0], coordinates[:, 1])
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

    def load_replica(self) -> bool:
        """Fetch (or re-validate) the copy of geo's layer now, in this thread; False when geo did
        not give one (it is then tried again a ttl later)."""
        return self.replica.begin_refresh() and self._fetch_claimed()

    def load_replica_until_held(self) -> bool:
        """load_replica now, and while geo gives none, again in the background until it does
        (or the client is closed): a worker that starts before geo holds the copy soon after geo
        answers, without waiting for a request to ask. The waits double from `retry` up to the
        ttl, so a geo that stays down costs a call (and a warning) every ttl at most."""
        if self.load_replica():
            return True
        threading.Thread(target=self._load_until_held, name="geo-copy", daemon=True).start()
        return False

    def _load_until_held(self) -> None:
        wait = self.replica.retry
        while self.replica.copy is None and not self._closed.wait(wait):
            self.load_replica()
            wait = min(2 * wait, self.replica.ttl)
        self._drop_thread_connection()

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> RadiusHits:
        """Tracts whose polygon meets the circle, nearest first, with their distance from the
        center: answered from the copy of geo's layer, fetched first when none is held."""
        return self.layer_copy().tracts_within_radius(lat, lon, radius_km)

    def layer_copy(self) -> LayerCopy:
        """The copy of geo's layer radius queries are answered from, fetched first when none is
        held (Unavailable when geo gives none)."""
        self._refresh_replica_if_due()
        return self.replica.copy or self._copy_now()

    def _copy_now(self) -> LayerCopy:
        """The copy of geo's layer, fetched in this thread unless another thread fetches it
        already (then waited for); Unavailable when geo gives none."""
        if not self.replica.begin_refresh(wait=2 * self.timeout):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        if self.replica.copy is None:
            self._fetch_claimed()
        else:
            self.replica.end_refresh(True)
        copy = self.replica.copy
        if copy is None:
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return copy

    def ready(self) -> bool:
        """Whether geo answers its own readiness check."""
        try:
            status, _, _ = self._exchange("GET", "/readyz", None, None)
        except Unavailable:
            return False
        return status == 200

    def _refresh_replica_if_due(self) -> None:
        """Start a check of the copy in the background when it is due: requests never wait."""
        if self.replica.due() and self.replica.begin_refresh():
            threading.Thread(
                target=self._refresh_replica, name="geo-copy-refresh", daemon=True
            ).start()

    def _refresh_replica(self) -> None:
        try:
            self._fetch_claimed()
        finally:
            self._drop_thread_connection()

    def _drop_thread_connection(self) -> None:
        """Close this thread's connection: the thread ends."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            self._discard(connection)

    def _fetch_claimed(self) -> bool:
        """_fetch_replica under the refresh claim already taken, which it releases."""
        confirmed = False
        try:
            confirmed = self._fetch_replica()
        finally:
            self.replica.end_refresh(confirmed)
        return confirmed

    def _fetch_replica(self) -> bool:
        etag = self.replica.etag
        headers = {"If-None-Match": etag} if etag else {}
        try:
            status, data, etag = self._exchange("GET", REPLICA_PATH, None, None, headers)
        except Unavailable:
            return False
        if status == 304:
            return True
        if status != 200:
            return False
        try:
            self.replica.replace(json.loads(data), etag)
        except ValueError:
            log.exception("geo sent a copy of its layer that cannot be used")
            return False
        finally:
            del data
            release_freed_memory()
        return True

    def close(self) -> None:
        """Close every thread's connection (each reopens on its next call) and stop waiting
        for a first copy of geo's layer."""
        self._closed.set()
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
        if self.layer is not None:
            path += ("&" if "?" in path else "?") + f"layer={_query(self.layer)}"
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
