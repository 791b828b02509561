"""Registry endpoints: thin wrappers over tractcast.registry.lifecycle."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from services.common.http import json_body, require_admin, settings_of
from tractcast.data.watch import watcher_for
from tractcast.errors import InvalidInput
from tractcast.monitoring.live_error import served_live_skill
from tractcast.registry import lifecycle
from tractcast.registry.metadata import SqlMetadataStore
from tractcast.registry.store import LocalModelStore

STORES_KEY = "tractcast.registry"

blueprint = Blueprint("registry", __name__)


def stores() -> tuple[LocalModelStore, SqlMetadataStore]:
    return current_app.extensions[STORES_KEY].get()


@blueprint.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz() -> dict[str, Any]:
    return lifecycle.check_ready(*stores())


@blueprint.get("/v1/models")
def list_models() -> dict[str, Any]:
    store, _ = stores()
    return lifecycle.list_models(store)


@blueprint.get("/v1/models/current")
def current_model() -> dict[str, Any]:
    store, metadata = stores()
    current = lifecycle.current_model(store, metadata)
    days = settings_of(current_app).rollback_days
    skill = served_live_skill(store, current["version"], days)
    return {**current, "live_skill": skill.to_dict()}


@blueprint.get("/v1/models/<version>")
def get_model(version: str) -> dict[str, Any]:
    store, _ = stores()
    return lifecycle.describe_version(store, version)


@blueprint.get("/v1/events")
def list_events() -> dict[str, Any]:
    _, metadata = stores()
    return {"events": [event.to_dict() for event in metadata.list_events()]}


@blueprint.post("/v1/admin/promote")
def promote() -> dict[str, Any]:
    require_admin()
    body = json_body()
    version = _text(body, "version", required=True)
    event = lifecycle.promote_version(
        *stores(), version, reason=_text(body, "reason") or "promoted by an admin"
    )
    return {"event": event.to_dict(), "current": lifecycle.current_model(*stores())}


@blueprint.post("/v1/admin/rollback")
def rollback() -> dict[str, Any]:
    require_admin()
    body = json_body() if request.content_length else {}  # the target is optional
    event = lifecycle.rollback_version(
        *stores(),
        _text(body, "to_version"),
        reason=_text(body, "reason") or "rolled back by an admin",
    )
    return {"event": event.to_dict(), "current": lifecycle.current_model(*stores())}


@blueprint.post("/v1/admin/data/accept")
def accept_data() -> dict[str, Any]:
    require_admin()
    body = json_body()
    version = _text(body, "data_version", required=True)
    assert version is not None
    _, metadata = stores()
    watcher = watcher_for(settings_of(current_app))
    event = lifecycle.accept_data_release(metadata, watcher, version, trigger="admin")
    return {"event": event.to_dict(), "pinned": version}


def _text(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{key!r} must be a non-empty string")
    return value
