"""Routes the dashboard reads: every tract's summary, one tract's history and forecasts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from flask.blueprints import BlueprintSetupState

from tractcast.serving.dashboard import BundleShelf, summaries_json, tract_history
from tractcast.serving.holder import BundleHolder

SHELF = "tractcast_dashboard_shelf"

dashboard = Blueprint("dashboard", __name__)


@dashboard.record_once
def attach_shelf(state: BlueprintSetupState) -> None:
    """The store's other bundles, read from where the app's bundle holder reads."""
    state.app.extensions[SHELF] = BundleShelf(state.app.extensions["bundles"].source)


@dashboard.get("/v1/dashboard/tracts")
def tract_summaries() -> Response:
    return Response(summaries_json(_holder().bundle()), mimetype="application/json")


@dashboard.get("/v1/tracts/<tract_id>/history")
def history(tract_id: str) -> dict[str, Any]:
    bundle = _holder().bundle()
    shelf: BundleShelf = current_app.extensions[SHELF]
    return tract_history(bundle, tract_id, shelf.earlier_than(bundle))


def _holder() -> BundleHolder:
    return current_app.extensions["bundles"]
