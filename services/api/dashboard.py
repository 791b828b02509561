"""Routes the dashboard reads: every tract's summary, one tract's history and forecasts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from tractcast.serving.dashboard import BundleShelf, summaries_json, tract_history
from tractcast.serving.layers import ServedLayers

SHELF = "tractcast_dashboard_shelf"

dashboard = Blueprint("dashboard", __name__)


@dashboard.record_once
def attach_shelf(state: BlueprintSetupState) -> None:
    """Per layer, the store's other bundles, read from where that layer's bundle holder reads."""
    layers: ServedLayers = state.app.extensions["layers"]
    state.app.extensions[SHELF] = {layer.name: BundleShelf(layer.holder.source) for layer in layers}


@dashboard.get("/v1/dashboard/tracts")
def tract_summaries() -> Response:
    """Every tract of a layer (?layer=; default the first): with a layers file, says which."""
    layers: ServedLayers = current_app.extensions["layers"]
    layer = layers.get(request.args.get("layer"))
    text = summaries_json(layer.holder.bundle(), layers.shown(layer))
    return Response(text, mimetype="application/json")


@dashboard.get("/v1/tracts/<tract_id>/history")
def history(tract_id: str) -> dict[str, Any]:
    """One tract of a layer (?layer=; default the first): with a layers file, says which."""
    layers: ServedLayers = current_app.extensions["layers"]
    layer = layers.get(request.args.get("layer"))
    bundle = layer.holder.bundle()
    shelf: BundleShelf = current_app.extensions[SHELF][layer.name]
    answer = tract_history(bundle, tract_id, shelf.earlier_than(bundle))
    shown = layers.shown(layer)
    return answer if shown is None else {**answer, "layer": shown}
