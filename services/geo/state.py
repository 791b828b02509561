"""The app's tract index, loaded once on first need (never at import time)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from flask import Flask, current_app, has_request_context, request

from tractcast.errors import TractcastError, Unavailable
from tractcast.geo.index import TractIndex
from tractcast.tract_layers import known_layer

EXTENSION = "tractcast_geo"


class IndexHolder:
    """Loads the index at most once at a time; a failed load is retried on the next request."""

    def __init__(self, load: Callable[[], TractIndex], index: TractIndex | None = None) -> None:
        self._load = load
        self._index = index
        self._lock = threading.Lock()
        self._heads: dict[int, str] = {}

    @property
    def loaded(self) -> TractIndex | None:
        return self._index

    def get(self) -> TractIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._load_or_unavailable()
        return self._index

    def tract_json_head(self, position: int) -> str:
        """'{"id":..,"name":..,"distance_km":' of one tract of the loaded index, kept."""
        head = self._heads.get(position)
        if head is None:
            tract = self.get().tract_at(position)
            head = json.dumps({"id": tract.id, "name": tract.name}, separators=(",", ":"))
            head = self._heads[position] = head[:-1] + ',"distance_km":'
        return head

    def _load_or_unavailable(self) -> TractIndex:
        try:
            return self._load()
        except (TractcastError, OSError) as exc:
            message = exc.message if isinstance(exc, TractcastError) else str(exc)
            raise Unavailable(f"the tract layer is not loaded: {message}") from exc


class LayerHolders(dict[str, IndexHolder]):
    """One IndexHolder per layer name, finest first; the first answers when no layer is named."""

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
