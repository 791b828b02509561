"""Registry endpoints: thin wrappers over tractcast.registry.Registry."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, has_request_context, request

from services.common.http import json_body, require_admin, settings_of
from tractcast.errors import InvalidInput
from tractcast.monitoring.live_error import served_live_skill
from tractcast.registry import Registry
from tractcast.tract_layers import known_layer
from tractcast.workflows.releases import watcher_for

REGISTRY_KEY = "tractcast.registry"  # the first layer's registry
LAYERS_KEY = "tractcast.registries"  # every layer's, by name, in the file's order

blueprint = Blueprint("registry", __name__)


def registry(body: dict[str, Any] | None = None) -> Registry:
    """The registry of the layer named by ?layer= or the body's "layer" (default: the first)."""
    found: Registry = current_app.extensions[LAYERS_KEY][_layer_name(body)].get()
    return found


def _layer_name(body: dict[str, Any] | None = None) -> str:
    """The layer named by ?layer= or the body's "layer" (InvalidInput when malformed, NotFound
    when unknown), or the first."""
    layers = current_app.extensions[LAYERS_KEY]
    name = request.args.get("layer") if has_request_context() else None
    if body is not None and body.get("layer") is not None:
        name = _text(body, "layer")
    return known_layer(layers, name) if name is not None else next(iter(layers))


def _with_layer(answer: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer, saying which layer it describes (named by ?layer= or the body's "layer")
    when the deployment has a layers file."""
    if settings_of().layers is None:
        return answer
    return {**answer, "layer": _layer_name(body)}


@blueprint.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz() -> dict[str, Any]:
    return registry().check_ready()


@blueprint.get("/v1/models")
def list_models() -> dict[str, Any]:
    return _with_layer(registry().list_models())


@blueprint.get("/v1/models/current")
def current_model() -> dict[str, Any]:
    layer = registry()
    model = layer.current_model()
    skill = served_live_skill(layer.store, model["version"], layer.settings.rollback_days)
    return _with_layer({**model, "live_skill": skill.to_dict()})


@blueprint.get("/v1/models/<version>")
def get_model(version: str) -> dict[str, Any]:
    return _with_layer(registry().describe(version))


@blueprint.get("/v1/events")
def list_events() -> dict[str, Any]:
    return _with_layer({"events": [event.to_dict() for event in registry().list_events()]})


@blueprint.post("/v1/admin/promote")
def promote() -> dict[str, Any]:
    require_admin()
    body = json_body()
    version = _text(body, "version", required=True)
    assert version is not None
    layer = registry(body)
    event = layer.promote(version, reason=_text(body, "reason") or "promoted by an admin")
    return _with_layer({"event": event.to_dict(), "current": layer.current_model()}, body)


@blueprint.post("/v1/admin/rollback")
def rollback() -> dict[str, Any]:
    require_admin()
    body = json_body() if request.content_length else {}  # the target is optional
    layer = registry(body)
    event = layer.rollback(
        _text(body, "to_version"), reason=_text(body, "reason") or "rolled back by an admin"
    )
    return _with_layer({"event": event.to_dict(), "current": layer.current_model()}, body)


@blueprint.post("/v1/admin/data/accept")
def accept_data() -> dict[str, Any]:
    require_admin()
    body = json_body()
    version = _text(body, "data_version", required=True)
    assert version is not None
    layer = registry(body)
    layer.local_store("accept a data release")  # before the watcher, which reads the store
    watcher = watcher_for(layer.settings)
    event = layer.accept_data_release(watcher, version, trigger="admin")
    return _with_layer({"event": event.to_dict(), "pinned": version}, body)


def _text(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{key!r} must be a non-empty string")
    return value
