"""Routes of the public API: parse, call one core function, return a dict."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from services.api.openapi import openapi_document
from services.common.http import json_body, settings_of
from tractcast.geo.index import Tract
from tractcast.serving.answers import (
    batch_json,
    forecast_json,
    layered_batch_json,
    reused_radius_json,
)
from tractcast.serving.bundle import Bundle
from tractcast.serving.holder import BundleHolder
from tractcast.serving.layers import ServedLayers
from tractcast.validation import parse_coordinate, parse_horizon, parse_points, parse_radius_km

api = Blueprint("api", __name__)

Answer = dict[str, Any] | tuple[dict[str, Any], int]


# The forecast and radius routes answer JSON text assembled by tractcast.serving.answers from pieces
# rendered once per bundle: same content as a dict, without encoding it again on each request.


@api.get("/v1/forecast")
def forecast() -> Response:
    lat, lon = parse_coordinate(request.args.get("lat"), request.args.get("lon"))
    horizon = parse_horizon(request.args.get("horizon"), max_horizon=settings_of().horizon)
    layers, name = _layers(), request.args.get("layer")
    if name is not None or len(layers) == 1:
        layer = layers.get(name)
        bundle = _bundle(layer.holder)
        tract: Tract | None = layer.geo.tract_for_point(lat, lon)
    else:  # the finest layer holding the point answers
        layer, tract = layers.holding(lat, lon)
        bundle = _bundle(layer.holder)
    return _json(forecast_json(bundle, tract, horizon, layers.shown(layer)))


@api.post("/v1/forecast")
def forecast_batch() -> Response:
    body = json_body()
    points = parse_points(body)
    longest = settings_of().horizon
    horizon = parse_horizon(request.args.get("horizon"), max_horizon=longest)  # checked if given
    if body.get("horizon") is not None:  # the body's horizon wins over the query's
        horizon = parse_horizon(body["horizon"], max_horizon=longest)
    layers, name = _layers(), request.args.get("layer")
    if name is not None or len(layers) == 1:
        layer = layers.get(name)
        bundle = _bundle(layer.holder)
        tracts = layer.geo.tracts_for_points(points)
        return _json(batch_json(bundle, tracts, horizon, layers.shown(layer)))
    found = layers.holding_points(points)  # each point from the finest layer holding it
    bundles: dict[str, Bundle] = {}
    for layer in [layers.first, *(layer for layer, _ in found)]:
        if layer.name not in bundles:
            bundles[layer.name] = _bundle(layer.holder)
    answers = [(bundles[layer.name], layer.name, tract) for layer, tract in found]
    first = layers.first.name
    return _json(layered_batch_json(answers, horizon, bundles[first], first))


@api.get("/v1/stats/radius")
def stats_radius() -> Response:
    lat, lon = parse_coordinate(request.args.get("lat"), request.args.get("lon"))
    radius_km = parse_radius_km(request.args.get("radius_km"))
    layers = _layers()
    layer = layers.get(request.args.get("layer"))  # default: the file's first layer
    bundle, copy = _bundle(layer.holder), layer.geo.layer_copy()
    shown = layers.shown(layer)
    return _json(
        reused_radius_json(bundle, copy, center=(lat, lon), radius_km=radius_km, layer=shown)
    )


@api.get("/v1/layers")
def list_layers() -> Answer:
    """The served tract layers in the file's order: tracts, champion, bundle and data release."""
    return {"layers": _layers().describe()}


@api.get("/healthz")
def healthz() -> Answer:
    return {"status": "ok"}


@api.get("/readyz")
def readyz() -> Answer:
    layers = _layers()
    loaded = {layer.name: layer.holder.loaded() for layer in layers}
    bundle = loaded[layers.first.name]
    without = [name for name, found in loaded.items() if found is None]
    if bundle is not None and without:  # another layer lacks its bundle
        bundle = None
    missing = "no serving bundle loaded"
    if layers.named and without:
        missing += f" (layers {', '.join(without)})"
    checks = {
        "bundle": "ok" if bundle is not None else missing,
        "geo": "ok" if layers.first.geo.ready() else "geo service not answering",
    }
    # the first layer's S3 state at the top, as with one layer; with a layers file, each layer's
    store: dict[str, Any] = {**_store_status(layers.first.holder)}
    if layers.named:
        store["layers"] = {
            layer.name: {
                "model_version": None if found is None else found.model_version,
                "data_version": None if found is None else found.data_version,
                **_store_status(layer.holder),
            }
            for layer, found in zip(layers, loaded.values(), strict=True)
        }
    if bundle is None or checks["geo"] != "ok":
        missing = "; ".join(problem for problem in checks.values() if problem != "ok")
        message = f"not ready: {missing}"
        return {"error": "unavailable", "message": message, "checks": checks, **store}, 503
    return {
        "status": "ready",
        "checks": checks,
        "model_version": bundle.model_version,
        "data_version": bundle.data_version,
        **store,
    }


def _store_status(holder: BundleHolder) -> dict[str, str]:
    """Whether S3 answers and so where the layer serves from, for a replica reading bundles
    from S3 (nothing for the local store)."""
    state = getattr(holder.source, "state", None)
    return state.status() if state is not None else {}


@api.get("/openapi.json")
def openapi() -> Answer:
    return openapi_document(settings_of().horizon)


def _json(text: str) -> Response:
    return Response(text, mimetype="application/json")


def _bundle(holder: BundleHolder) -> Bundle:
    """The champion's bundle of a layer, or the one pinned by ?model_version=."""
    version = request.args.get("model_version")
    if version is not None:  # present but empty is malformed, not "the champion"
        return holder.bundle_for_version(version)
    return holder.bundle()


def _layers() -> ServedLayers:
    return current_app.extensions["layers"]
