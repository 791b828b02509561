"""HTTP views of the geo service: parse, call the index, return a dict."""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, request

from services.common.http import json_body
from services.geo.state import LAYER_SOURCES, index_holder, layer_holders, tract_index
from tractcast.errors import NotFound, TractcastError, Unavailable
from tractcast.geo.index import Tract, TractIndex
from tractcast.validation import parse_coordinate, parse_points, parse_radius_km

bp = Blueprint("geo", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Ready when every layer is loaded; `tracts` counts the first (or the named) layer's.

    On a replica serving from S3, `artifact_store` and `serving_from` are the first layer's,
    and with several layers `layer_stores` gives each layer's.
    """
    holders, named = layer_holders(), index_holder()
    try:
        loaded = {name: len(holder.get().tracts) for name, holder in holders.items()}
        index = named.get()
    except TractcastError as exc:
        return {**Unavailable(exc.message).to_dict(), "status": "not_ready", **_stores()}, 503
    answer: dict[str, Any] = {"status": "ready", "tracts": len(index.tracts), **_stores()}
    if len(loaded) > 1:
        answer["layers"] = loaded
    return answer, 200


def _stores() -> dict[str, Any]:
    """Whether S3 answered when each layer copy was fetched from it, if it was: the first
    layer's at the top, every layer's under `layer_stores` when there are several."""
    sources = current_app.extensions.get(LAYER_SOURCES) or {}
    states = {name: source.state.status() for name, source in sources.items()}
    if not states:
        return {}
    first: dict[str, Any] = next(iter(states.values()))
    return {**first, "layer_stores": states} if len(states) > 1 else first


@bp.get("/v1/tracts/lookup")
def lookup_point() -> dict[str, Any]:
    lat, lon = parse_coordinate(request.args.get("lat"), request.args.get("lon"))
    index = tract_index()
    tract, cell = index.lookup(lat, lon)
    if tract is None:
        raise NotFound(f"no tract contains lat={lat:g}, lon={lon:g}")
    answer: dict[str, Any] = {"tract": tract_dict(tract)}
    if cell is not None:
        # Every point of this grid cell has the same tract: clients may reuse the answer.
        answer["cell"] = {"layer": index.layer_id, "grid": index.grid.to_list(), "index": cell}
    return answer


@bp.get("/v1/tracts/replica")
def replica() -> Response:
    """What the API copies to answer most points and every radius itself (the index's grid of
    answers and the rings' vertices), with an ETag: a client holding the same copy gets 304."""
    text, etag = replica_json(tract_index())
    response = Response(text, mimetype="application/json")
    response.set_etag(etag)
    response.make_conditional(request)  # in place: 304 with no body when the ETag matches
    return response


T = TypeVar("T")


def per_index(make: Callable[[TractIndex], T]) -> Callable[[TractIndex], T]:
    """`make(index)`, made once per loaded index and kept as long as the index is: a layer
    copy replaced (S3 follow) takes its rendered texts with it, where a cache of the last few
    indexes kept several census layers alive."""
    made: weakref.WeakKeyDictionary[TractIndex, T] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    def cached(index: TractIndex) -> T:
        with lock:
            if index in made:
                return made[index]
        value = make(index)  # outside the lock: a census layer takes seconds to render
        with lock:
            return made.setdefault(index, value)

    return cached


@per_index
def replica_json(index: TractIndex) -> tuple[str, str]:
    """The replica as JSON text and its entity tag, made once per loaded index."""
    text = json.dumps(index.replica(), separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()[:20]


@bp.post("/v1/tracts/lookup")
def lookup_points() -> dict[str, Any]:
    points = parse_points(json_body())
    lats, lons = zip(*points, strict=True)
    tracts = tract_index().tracts_for_points(lats, lons)
    return {"results": [{"tract": tract_dict(tract)} for tract in tracts]}


@bp.get("/v1/tracts/radius")
def tracts_in_radius() -> Response:
    lat, lon = parse_coordinate(request.args.get("lat"), request.args.get("lon"))
    radius_km = parse_radius_km(request.args.get("radius_km"))
    holder = index_holder()
    index = holder.get()  # one index for the whole answer, even while a new one replaces it
    positions, distances = index.positions_within_radius(lat, lon, radius_km)
    # Hundreds of tracts at 50 km on a fine layer: rows are joined from JSON pieces rendered
    # once per tract, the same text jsonify would give for the same dicts.
    opening = json.dumps({"lat": lat, "lon": lon, "radius_km": radius_km}, separators=(",", ":"))
    rows = ",".join(
        f"{holder.tract_json_head(index, position)}{distance!r}}}"
        for position, distance in zip(positions.tolist(), distances.tolist(), strict=True)
    )
    return Response(f'{opening[:-1]},"tracts":[{rows}]}}', mimetype="application/json")


@bp.get("/v1/tracts")
def list_tracts() -> dict[str, Any]:
    index = tract_index()
    tracts = index.tracts
    return {
        "id_field": index.id_field,
        "name_field": index.name_field,
        "count": len(tracts),
        "tracts": [tract_dict(tract) for tract in tracts],
    }


@bp.get("/v1/tracts/geojson")
def tract_outlines() -> Response:
    return Response(outlines_json(tract_index()), mimetype="application/geo+json")


@per_index
def outlines_json(index: TractIndex) -> str:
    """The layer's simplified outlines as GeoJSON text, made once per loaded index."""
    return json.dumps(index.simplified_outlines(), separators=(",", ":"))


@bp.get("/v1/tracts/<tract_id>")
def tract_outline(tract_id: str) -> dict[str, Any]:
    return tract_index().outline(tract_id)


def tract_dict(tract: Tract | None) -> dict[str, str] | None:
    # Not dataclasses.asdict: it deep-copies, and batches and radius answers build thousands.
    return None if tract is None else {"id": tract.id, "name": tract.name}
