"""HTTP views of the geo service: parse, call the index, return a dict."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, request

from services.common.http import json_body
from services.geo.state import index_holder, tract_index
from tractcast.errors import NotFound, TractcastError, Unavailable
from tractcast.geo.index import Tract, TractHit
from tractcast.validation import parse_coordinate, parse_points, parse_radius_km

bp = Blueprint("geo", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    try:
        index = index_holder().get()
    except TractcastError as exc:
        return {**Unavailable(exc.message).to_dict(), "status": "not_ready"}, 503
    return {"status": "ready", "tracts": len(index.tracts)}, 200


@bp.get("/v1/tracts/lookup")
def lookup_point() -> dict[str, Any]:
    lat, lon = parse_coordinate(request.args.get("lat"), request.args.get("lon"))
    tract = tract_index().tract_for_point(lat, lon)
    if tract is None:
        raise NotFound(f"no tract contains lat={lat:g}, lon={lon:g}")
    return {"tract": asdict(tract)}


@bp.post("/v1/tracts/lookup")
def lookup_points() -> dict[str, Any]:
    points = parse_points(json_body())
    lats, lons = zip(*points, strict=True)
    tracts = tract_index().tracts_for_points(lats, lons)
    return {"results": [{"tract": tract_dict(tract)} for tract in tracts]}


@bp.get("/v1/tracts/radius")
def tracts_in_radius() -> dict[str, Any]:
    lat, lon = parse_coordinate(request.args.get("lat"), request.args.get("lon"))
    radius_km = parse_radius_km(request.args.get("radius_km"))
    hits = tract_index().tracts_within_radius(lat, lon, radius_km)
    return {"lat": lat, "lon": lon, "radius_km": radius_km, "tracts": [hit_dict(h) for h in hits]}


@bp.get("/v1/tracts")
def list_tracts() -> dict[str, Any]:
    index = tract_index()
    tracts = index.tracts
    return {
        "id_field": index.id_field,
        "name_field": index.name_field,
        "count": len(tracts),
        "tracts": [asdict(tract) for tract in tracts],
    }


@bp.get("/v1/tracts/<tract_id>")
def tract_outline(tract_id: str) -> dict[str, Any]:
    return tract_index().outline(tract_id)


def tract_dict(tract: Tract | None) -> dict[str, str] | None:
    return None if tract is None else asdict(tract)


def hit_dict(hit: TractHit) -> dict[str, Any]:
    return {**asdict(hit.tract), "distance_km": round(hit.distance_km, 3)}
