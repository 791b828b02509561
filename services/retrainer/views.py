"""Retrainer endpoints: trigger a retrain, health."""

from __future__ import annotations

from flask import Blueprint, request

from services.common.http import require_admin, settings_of
from services.retrainer.jobs import enqueue_retrain
from tractcast.tract_layers import layer_named, tract_layers

bp = Blueprint("retrainer", __name__)


@bp.post("/v1/admin/retrain")
def retrain():  # type: ignore[no-untyped-def]
    """Retrain the layer named by ?layer=, or every layer (each its own task)."""
    require_admin()
    settings, name = settings_of(), request.args.get("layer")
    if settings.layers is None and name is None:
        return enqueue_retrain(settings, trigger="admin"), 202
    layers = tract_layers(settings)
    if name is not None:
        layer = layer_named(layers, name)
        return enqueue_retrain(layer.settings, trigger="admin", layer=layer.name), 202
    started = {
        layer.name: enqueue_retrain(layer.settings, trigger="admin", layer=layer.name)
        for layer in layers
    }
    return {"status": "started", "trigger": "admin", "layers": started}, 202


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    return {"status": "ready", "broker": "celery" if settings_of().broker_url else "in-process"}
