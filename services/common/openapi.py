"""What every service's OpenAPI fragment shares: helpers, common parameters and schemas, and
the assembly of the fragments into one document with what nginx may answer on its own."""

from __future__ import annotations

from typing import Any

from tractcast.validation import LATITUDE_LIMIT, LONGITUDE_LIMIT, MAX_POINTS, MAX_RADIUS_KM

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def query(name: str, schema: Schema, description: str, required: bool = True) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def json_response(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Schema]:
    texts = {
        400: "Invalid input (the message says exactly what is wrong).",
        401: "Missing bearer token.",
        403: "Wrong bearer token.",
        404: "Not found.",
        409: "Conflict with the current state.",
        413: "Payload too large (a body over the size limit, or too many points).",
        414: "The request line (URL) is too long (over 4 KB).",
        415: "The body is not JSON (send Content-Type: application/json).",
        429: "Too many requests from this client (nginx rate limit); retry after Retry-After.",
        503: "A dependency is unavailable (no serving bundle, geo service down, ...).",
    }
    return {str(status): json_response(ref("Error"), texts[status]) for status in statuses}


LATITUDE = {"type": "number", "minimum": -LATITUDE_LIMIT, "maximum": LATITUDE_LIMIT}
LONGITUDE = {"type": "number", "minimum": -LONGITUDE_LIMIT, "maximum": LONGITUDE_LIMIT}
LAT = query("lat", {**LATITUDE, "examples": [45.4642]}, "Latitude (WGS84).")
LON = query("lon", {**LONGITUDE, "examples": [9.19]}, "Longitude (WGS84).")
RADIUS = query(
    "radius_km",
    {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RADIUS_KM},
    "Radius of the circle in kilometres.",
)
POINTS = {"type": "array", "items": ref("Point"), "minItems": 1, "maxItems": MAX_POINTS}
LAYER = query(
    "layer",
    {"type": "string", "examples": ["provinces"]},
    "A tract layer of the deployment (GET /v1/layers). Default: for a point, the finest layer "
    "holding it (the one whose tract there is smallest); otherwise the first layer of the "
    "layers file. Malformed: 400; unknown: 404.",
    required=False,
)
TRACT_PATH = {
    "name": "tract_id",
    "in": "path",
    "required": True,
    "description": "A tract id of the served layer.",
    "schema": {"type": "string", "minLength": 1, "examples": ["015"]},
}
REQUEST_ID = {
    "X-Request-ID": {
        "description": "The request's id, the same in the logs of nginx, api and geo.",
        "schema": {"type": "string"},
    }
}
ADMIN: list[Schema] = [{"bearerAuth": []}]

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {
                "type": "string",
                "description": "Stable machine-readable code.",
                "examples": ["invalid_input", "not_found", "unavailable"],
            },
            "message": {"type": "string", "description": "Human-readable, safe to show."},
        },
    },
    "Point": {
        "type": "object",
        "required": ["lat", "lon"],
        "properties": {"lat": LATITUDE, "lon": LONGITUDE},
    },
    "Tract": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
    },
    "AdminResult": {
        "type": "object",
        "description": (
            "What the action did (e.g. the version now serving, or the task id); with a layers "
            "file, `layer` names the tract layer it acted on."
        ),
        "additionalProperties": True,
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "examples": ["ok", "ready"]}},
        "additionalProperties": True,
    },
}

# Routes nginx answers itself before the services: not rate limited, no body size limit.
UNLIMITED = {"/healthz", "/readyz"}


def with_gateway_answers(paths: dict[str, Schema]) -> dict[str, Schema]:
    """Add what nginx may answer on its own (414, 429, 413) and the X-Request-ID every answer
    has."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            responses.update(errors(414))
            if path not in UNLIMITED:
                responses.update(errors(429))
            if method == "post":
                responses.update(errors(413))
            for response in responses.values():
                response.setdefault("headers", {}).update(REQUEST_ID)
    return paths


def assemble(paths: dict[str, Schema], schemas: dict[str, Schema]) -> dict[str, Any]:
    """The OpenAPI document of the whole public surface behind nginx, from the services' paths
    and schemas, as a dict ready for jsonify."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tractcast",
            "version": "1.0.0",
            "description": (
                "Per-tract infection counts and forecasts. Every answer names the model version "
                "and data version that produced it. Errors are JSON: "
                '{"error": code, "message": text}.'
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "forecast", "description": "Forecasts and statistics."},
            {"name": "tracts", "description": "Point to tract (geo service)."},
            {"name": "models", "description": "Model versions and their metrics (registry)."},
            {"name": "admin", "description": "Promotion, rollback, retraining (bearer token)."},
            {"name": "dashboard", "description": "What the dashboard at / draws (api)."},
            {"name": "operations", "description": "Health, readiness, metrics, this document."},
        ],
        "paths": with_gateway_answers(paths),
        "components": {
            "schemas": {**SCHEMAS, **schemas},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
