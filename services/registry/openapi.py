"""The OpenAPI fragment of the registry service's routes (services/registry/views.py)."""

from __future__ import annotations

from services.common.openapi import ADMIN, LAYER, Schema, errors, json_response, ref
from tractcast.validation import VERSION_PATTERN

VERSION_PATH = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "A model version id.",
    "schema": {"type": "string", "pattern": VERSION_PATTERN},
}

DESCRIBED_LAYER = {
    "type": "string",
    "description": (
        "The tract layer described (with a layers file; ?layer= or the body's layer, "
        "default the first)."
    ),
}

SCHEMAS: dict[str, Schema] = {
    "Event": {
        "type": "object",
        "required": ["id", "at", "kind", "version"],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "kind": {
                "enum": [
                    "registered",
                    "promoted",
                    "rejected",
                    "rolled_back",
                    "data_held",
                    "data_accepted",
                    "data_refused",
                    "feed_stale",
                ]
            },
            "version": {
                "type": "string",
                "description": "The model version; for data_* and feed_stale the data version.",
            },
            "from_version": {"type": ["string", "null"]},
            "reason": {"type": "string"},
            "trigger": {"type": "string"},
        },
        "additionalProperties": True,
    },
    "AcceptDataRequest": {
        "type": "object",
        "required": ["data_version"],
        "properties": {
            "data_version": {"type": "string", "description": "The held release."},
            "layer": {"type": "string", "description": "The tract layer (default: the first)."},
        },
        "additionalProperties": False,
    },
    "AcceptDataResult": {
        "type": "object",
        "required": ["event", "pinned"],
        "properties": {
            "event": ref("Event"),
            "pinned": {"type": "string"},
            "layer": DESCRIBED_LAYER,
        },
    },
    "EventList": {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {"type": "array", "items": ref("Event")},
            "layer": DESCRIBED_LAYER,
        },
    },
    "ModelVersion": {
        "type": "object",
        "required": ["version", "family", "created_at", "data_version"],
        "properties": {
            "version": {"type": "string", "examples": ["v0003-lstm"]},
            "family": {"type": "string", "examples": ["lstm", "persistence"]},
            "created_at": {"type": "string", "format": "date-time"},
            "data_version": {"type": "string"},
            "metrics": {
                "type": "object",
                "description": "Backtest metrics (MSE, MAE, RMSE, MAPE, WAPE per horizon, ...).",
                "additionalProperties": True,
            },
            "manifest": {
                "type": "object",
                "description": "Hyperparameters, git commit, data version.",
                "additionalProperties": True,
            },
            "champion": {"type": "boolean", "description": "Whether this version serves."},
            "layer": DESCRIBED_LAYER,
        },
        "additionalProperties": True,
    },
    "ModelList": {
        "type": "object",
        "required": ["versions"],
        "properties": {
            "versions": {"type": "array", "items": ref("ModelVersion")},
            "current": {"type": ["string", "null"], "description": "The serving version."},
            "layer": DESCRIBED_LAYER,
        },
        "additionalProperties": True,
    },
    "CurrentModel": {
        "type": "object",
        "description": "The champion and the bundle being served.",
        "properties": {
            "version": {"type": "string"},
            "data_version": {"type": "string"},
            "bundle_id": {"type": "string", "examples": ["v0003-lstm@3f2a9c"]},
            "live_skill": ref("LiveSkill"),
            "layer": DESCRIBED_LAYER,
        },
        "additionalProperties": True,
    },
    "LiveSkill": {
        "type": "object",
        "description": (
            "The serving version's live MAE over the weekly seasonal naive's on the same days and "
            "tracts (below 1: better than the naive), over its most recent scored days, overall "
            "and per horizon; null figures until actuals arrive."
        ),
        "properties": {
            "version": {"type": "string"},
            "days": {"type": "integer"},
            "points": {"type": "integer"},
            "mae": {"type": ["number", "null"]},
            "naive_mae": {"type": ["number", "null"]},
            "relative_mae": {"type": ["number", "null"]},
            "per_horizon": {"type": "array", "items": {"type": "object"}},
        },
        "additionalProperties": True,
    },
    "RollbackRequest": {
        "type": "object",
        "properties": {
            "to_version": {
                "type": "string",
                "description": "Version to go back to; the previous champion when omitted.",
            },
            "layer": {"type": "string", "description": "The tract layer (default: the first)."},
        },
    },
    "PromoteRequest": {
        "type": "object",
        "required": ["version"],
        "properties": {
            "version": {"type": "string"},
            "layer": {"type": "string", "description": "The tract layer (default: the first)."},
        },
    },
}


def paths() -> dict[str, Schema]:
    """The registry service's public paths (fresh dicts: the assembly adds to them)."""
    return {
        "/v1/events": {
            "get": {
                "tags": ["models"],
                "operationId": "listEvents",
                "summary": "What happened to model versions: registrations, promotions, ...",
                "parameters": [LAYER],
                "responses": {
                    "200": json_response(ref("EventList"), "Events, newest first."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/models": {
            "get": {
                "tags": ["models"],
                "operationId": "listModels",
                "summary": "Every registered model version with its metrics.",
                "parameters": [LAYER],
                "responses": {
                    "200": json_response(ref("ModelList"), "Versions, newest first."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/models/current": {
            "get": {
                "tags": ["models"],
                "operationId": "currentModel",
                "summary": "The champion: the version that serves, and its bundle.",
                "parameters": [LAYER],
                "responses": {
                    "200": json_response(ref("CurrentModel"), "The serving version."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/models/{version}": {
            "get": {
                "tags": ["models"],
                "operationId": "getModel",
                "summary": "One model version with its metrics and manifest.",
                "parameters": [VERSION_PATH, LAYER],
                "responses": {
                    "200": json_response(ref("ModelVersion"), "The version."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/admin/rollback": {
            "post": {
                "tags": ["admin"],
                "operationId": "rollback",
                "summary": "Serve an older version again (the previous champion by default).",
                "security": ADMIN,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": ref("RollbackRequest")}},
                },
                "responses": {
                    "200": json_response(ref("AdminResult"), "The version now serving."),
                    **errors(400, 401, 403, 404, 409, 415, 503),
                },
            }
        },
        "/v1/admin/data/accept": {
            "post": {
                "tags": ["admin"],
                "operationId": "acceptData",
                "summary": "Accept a held data release: it is pinned and the next retrain uses it.",
                "description": (
                    "A release inferred differently from the pinned one, or rewriting more of "
                    "the published history than TRACTCAST_HISTORY_TOLERANCE allows, is held "
                    "(a data_held event in /v1/events names it and why); the last good release "
                    "keeps serving until an admin accepts the held one here. A registry on a "
                    "host without the store (TRACTCAST_SERVING_SOURCE=s3) answers 409: the "
                    "watcher's state lies in the store."
                ),
                "security": ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("AcceptDataRequest")}},
                },
                "responses": {
                    "200": json_response(
                        ref("AcceptDataResult"), "The event and the release now pinned."
                    ),
                    **errors(400, 401, 403, 404, 409, 415, 503),
                },
            }
        },
        "/v1/admin/promote": {
            "post": {
                "tags": ["admin"],
                "operationId": "promote",
                "summary": "Make a registered version the champion.",
                "description": (
                    "409 when the version has no bundle yet, and on a registry without the "
                    "store (TRACTCAST_SERVING_SOURCE=s3): promotions and rollbacks move the "
                    "store's current link, so they run on the registry beside the store."
                ),
                "security": ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("PromoteRequest")}},
                },
                "responses": {
                    "200": json_response(ref("AdminResult"), "The version now serving."),
                    **errors(400, 401, 403, 404, 409, 415, 503),
                },
            }
        },
    }
