"""The app's tract index, loaded on first need (never at import time), and replaced when the
layer copy it came from changes (TRACTCAST_SERVING_SOURCE=s3)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask, current_app, has_request_context, request

from tractcast.errors import TractcastError, Unavailable
from tractcast.geo.index import TractIndex
from tractcast.tract_layers import known_layer

EXTENSION = "tractcast_geo"
LAYER_SOURCES = "tractcast_layer_sources"  # each layer's S3 layer source, by name (a replica)
log = logging.getLogger(__name__)


class IndexHolder:
    """Loads the index at most once at a time; a failed load is retried on the next request.

    `locate()` names the layer file to load. With `follow_every` seconds, it is asked again that
    often, off the requests' path, and a new file is loaded completely before it replaces the
    index: requests keep the old one until then, and a file that fails to load replaces nothing
    (the way the API's BundleHolder follows `current`)."""

    def __init__(
        self,
        locate: Callable[[], Path],
        load: Callable[[Path], TractIndex],
        index: TractIndex | None = None,
        *,
        follow_every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._locate = locate
        self._load = load
        self._index = index
        self._path: Path | None = None  # the file the index came from
        self._failed: Path | None = None  # a file that failed to load: tried again when it moves
        self._lock = threading.Lock()
        self._follow_every = follow_every
        self._clock = clock
        self._next_check = float("inf") if follow_every is None else clock() + follow_every
        self._following = threading.Lock()  # one look at a time
        self._heads: tuple[TractIndex | None, dict[int, str]] = (None, {})

    @property
    def loaded(self) -> TractIndex | None:
        return self._index

    def get(self) -> TractIndex:
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._path = self._locate_or_unavailable()
                    self._index = self._load_or_unavailable(self._path)
                index = self._index
        if self._clock() >= self._next_check and self._following.acquire(blocking=False):
            threading.Thread(target=self._follow, name="geo-layer-follow", daemon=True).start()
        return index

    def tract_json_head(self, index: TractIndex, position: int) -> str:
        """'{"id":..,"name":..,"distance_km":' of one tract of `index`, kept while it serves."""
        owner, heads = self._heads
        if owner is not index:
            heads = {}
            if index is self._index:
                self._heads = (index, heads)
        head = heads.get(position)
        if head is None:
            tract = index.tract_at(position)
            head = json.dumps({"id": tract.id, "name": tract.name}, separators=(",", ":"))
            head = heads[position] = head[:-1] + ',"distance_km":'
        return head

    def _follow(self) -> None:
        try:
            self._follow_claimed()
        finally:
            self._following.release()

    def _follow_claimed(self) -> None:
        try:
            path = self._locate()
            if path in (self._path, self._failed):
                return
            try:
                index = self._load(path)
            except Exception:
                log.exception("tract layer %s failed to load; keeping %s", path, self._path)
                self._failed = path
                return
            with self._lock:
                self._index, self._path, self._failed = index, path, None
            log.info("now serving tract layer %s (%d tracts)", path, len(index.tracts))
        except (TractcastError, OSError) as exc:  # nothing to locate: keep what serves
            log.warning("tract layer not looked up: %s", exc)
        finally:
            if self._follow_every is not None:
                self._next_check = self._clock() + self._follow_every

    def _locate_or_unavailable(self) -> Path:
        try:
            return self._locate()
        except (TractcastError, OSError) as exc:
            raise _not_loaded(exc) from exc

    def _load_or_unavailable(self, path: Path) -> TractIndex:
        try:
            return self._load(path)
        except (TractcastError, OSError) as exc:
            raise _not_loaded(exc) from exc


def _not_loaded(exc: TractcastError | OSError) -> Unavailable:
    message = exc.message if isinstance(exc, TractcastError) else str(exc)
    return Unavailable(f"the tract layer is not loaded: {message}")


class LayerHolders(dict[str, IndexHolder]):
    """One IndexHolder per layer name, in the file's order; the first answers when no layer is
    named."""

    def named(self, name: str | None) -> IndexHolder:
        """The holder of the named layer (400 malformed, 404 unknown), or the first."""
        if name is None:
            return next(iter(self.values()))
        return self[known_layer(self, name)]


def attach_index(app: Flask, holders: LayerHolders) -> None:
    app.extensions[EXTENSION] = holders


def layer_holders(app: Flask | None = None) -> LayerHolders:
    return (app or current_app).extensions[EXTENSION]


def index_holder(app: Flask | None = None) -> IndexHolder:
    """The holder of the layer the request names with ?layer= (the first when none)."""
    name = request.args.get("layer") if has_request_context() else None
    return layer_holders(app).named(name)


def tract_index() -> TractIndex:
    """The current app's index, loading it if needed (503 when it cannot be loaded)."""
    return index_holder().get()
