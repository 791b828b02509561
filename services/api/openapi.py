"""The OpenAPI 3.1 document of the whole public surface behind nginx (api, geo, registry, admin)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

MAX_HORIZON = 14


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: Schema, description: str, required: bool = True) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Schema]:
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
    return {str(status): _json(_ref("Error"), texts[status]) for status in statuses}


LAT = _query(
    "lat",
    {"type": "number", "minimum": -90, "maximum": 90, "examples": [45.4642]},
    "Latitude (WGS84).",
)
LON = _query(
    "lon",
    {"type": "number", "minimum": -180, "maximum": 180, "examples": [9.19]},
    "Longitude (WGS84).",
)
HORIZON = _query(
    "horizon",
    {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON, "default": MAX_HORIZON},
    "How many forecast days to return.",
    required=False,
)
MODEL_VERSION = _query(
    "model_version",
    {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", "examples": ["v0003-lstm"]},
    "Answer with the newest bundle of this model version instead of the champion.",
    required=False,
)
RADIUS = _query(
    "radius_km",
    {"type": "number", "exclusiveMinimum": 0, "maximum": 500},
    "Radius of the circle in kilometres.",
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
VERSION_PATH = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "A model version id.",
    "schema": {"type": "string", "pattern": r"^v\d{4,}-[a-z][a-z0-9_]*$"},
}
ADMIN: list[dict[str, list[str]]] = [{"bearerAuth": []}]

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
        "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
        },
    },
    "PointsRequest": {
        "type": "object",
        "required": ["points"],
        "properties": {
            "points": {"type": "array", "items": _ref("Point"), "minItems": 1, "maxItems": 10000},
            "horizon": {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON},
        },
    },
    "Tract": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
    },
    "ForecastDay": {
        "type": "object",
        "required": ["date", "new_cases", "lower", "upper"],
        "properties": {
            "date": {"type": "string", "format": "date"},
            "new_cases": {"type": "number", "description": "Forecast new cases that day."},
            "lower": {"type": "number", "description": "Lower bound of the 80% interval."},
            "upper": {"type": "number", "description": "Upper bound of the 80% interval."},
            "intervals": {
                "type": "object",
                "description": (
                    "Every central prediction interval of the day, keyed by its level in percent "
                    '("50", "80", "95"); "80" repeats lower/upper. A model registered before the '
                    'other levels existed gives "80" only.'
                ),
                "additionalProperties": _ref("Interval"),
            },
        },
    },
    "Interval": {
        "type": "object",
        "required": ["lower", "upper"],
        "properties": {"lower": {"type": "number"}, "upper": {"type": "number"}},
    },
    "Forecast": {
        "type": "object",
        "required": [
            "tract",
            "as_of",
            "total_cases",
            "new_cases",
            "next_day",
            "forecast",
            "model_version",
            "data_version",
        ],
        "properties": {
            "tract": _ref("Tract"),
            "as_of": {"type": "string", "format": "date", "description": "Last observed day."},
            "total_cases": {"type": "integer", "description": "Cumulative cases on as_of."},
            "new_cases": {"type": "integer", "description": "New cases on as_of."},
            "next_day": _ref("ForecastDay"),
            "forecast": {"type": "array", "items": _ref("ForecastDay"), "maxItems": MAX_HORIZON},
            "model_version": {"type": "string"},
            "data_version": {"type": "string"},
        },
    },
    "BatchForecast": {
        "type": "object",
        "required": ["results", "model_version", "data_version"],
        "properties": {
            "results": {
                "type": "array",
                "description": "One entry per point, in order: a forecast or an error.",
                "items": {"oneOf": [_ref("Forecast"), _ref("Error")]},
            },
            "model_version": {"type": "string"},
            "data_version": {"type": "string"},
        },
    },
    "RadiusTract": {
        "type": "object",
        "required": ["id", "name", "distance_km", "total_cases", "new_cases", "next_day"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "distance_km": {"type": "number", "description": "0 when the center is inside."},
            "total_cases": {"type": "integer"},
            "new_cases": {"type": "integer"},
            "next_day": _ref("ForecastDay"),
        },
    },
    "RadiusStats": {
        "type": "object",
        "required": ["center", "radius_km", "tracts", "totals", "model_version", "data_version"],
        "properties": {
            "center": _ref("Point"),
            "radius_km": {"type": "number"},
            "tracts": {"type": "array", "items": _ref("RadiusTract")},
            "without_data": {
                "type": "array",
                "description": "Tracts meeting the circle that the bundle has no data for.",
                "items": _ref("Tract"),
            },
            "totals": {
                "type": "object",
                "description": "Sums over `tracts`.",
                "required": ["tracts", "total_cases", "new_cases", "next_day"],
                "properties": {
                    "tracts": {"type": "integer"},
                    "total_cases": {"type": "integer"},
                    "new_cases": {"type": "integer"},
                    "next_day": {"type": "number", "description": "Sum of next-day forecasts."},
                },
            },
            "as_of": {"type": "string", "format": "date"},
            "model_version": {"type": "string"},
            "data_version": {"type": "string"},
        },
    },
    "TractLookup": {
        "type": "object",
        "required": ["tract"],
        "properties": {
            "tract": _ref("Tract"),
            "cell": {
                "type": "object",
                "description": (
                    "Present when every point of this cell of the layer's grid lies in the same "
                    "tract: a client may reuse the answer for any point of the cell."
                ),
                "required": ["layer", "grid", "index"],
                "properties": {
                    "layer": {"type": "string", "description": "Fingerprint of the layer."},
                    "grid": {
                        "type": "array",
                        "description": "west, south, dx, dy (degrees), nx, ny (cells).",
                        "items": {"type": "number"},
                        "minItems": 6,
                        "maxItems": 6,
                    },
                    "index": {"type": "integer", "minimum": 0, "description": "row * nx + col"},
                },
            },
        },
    },
    "TractList": {
        "type": "object",
        "required": ["id_field", "name_field", "count", "tracts"],
        "properties": {
            "id_field": {"type": "string", "description": "Layer property holding the id."},
            "name_field": {"type": "string", "description": "Layer property holding the name."},
            "count": {"type": "integer", "minimum": 0},
            "tracts": {"type": "array", "items": _ref("Tract")},
        },
    },
    "TractOutline": {
        "type": "object",
        "description": "A GeoJSON Feature: the tract's WGS84 polygon.",
        "required": ["type", "id", "properties", "geometry"],
        "properties": {
            "type": {"const": "Feature"},
            "id": {"type": "string"},
            "properties": _ref("Tract"),
            "geometry": {
                "type": "object",
                "required": ["type", "coordinates"],
                "properties": {
                    "type": {"enum": ["Polygon", "MultiPolygon"]},
                    "coordinates": {"type": "array"},
                },
            },
        },
    },
    "TractsInRadius": {
        "type": "object",
        "description": "Tracts whose polygon meets the circle, nearest first, then by id.",
        "required": ["lat", "lon", "radius_km", "tracts"],
        "properties": {
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "radius_km": {"type": "number"},
            "tracts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "name", "distance_km"],
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "distance_km": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
    },
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
        "properties": {"data_version": {"type": "string", "description": "The held release."}},
        "additionalProperties": False,
    },
    "AcceptDataResult": {
        "type": "object",
        "required": ["event", "pinned"],
        "properties": {"event": _ref("Event"), "pinned": {"type": "string"}},
    },
    "EventList": {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "items": _ref("Event")}},
    },
    "TractLookupBatch": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"tract": {"oneOf": [_ref("Tract"), {"type": "null"}]}},
                },
            }
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
        },
        "additionalProperties": True,
    },
    "ModelList": {
        "type": "object",
        "required": ["versions"],
        "properties": {
            "versions": {"type": "array", "items": _ref("ModelVersion")},
            "current": {"type": ["string", "null"], "description": "The serving version."},
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
            "live_skill": _ref("LiveSkill"),
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
            }
        },
    },
    "PromoteRequest": {
        "type": "object",
        "required": ["version"],
        "properties": {"version": {"type": "string"}},
    },
    "AdminResult": {
        "type": "object",
        "description": "What the action did (e.g. the version now serving, or the task id).",
        "additionalProperties": True,
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "examples": ["ok", "ready"]}},
        "additionalProperties": True,
    },
    "TractOutlines": {
        "type": "object",
        "description": "A GeoJSON FeatureCollection of every tract, outlines simplified for maps.",
        "required": ["type", "features"],
        "properties": {
            "type": {"const": "FeatureCollection"},
            "features": {"type": "array", "items": _ref("TractOutline")},
        },
    },
    "TractSummary": {
        "type": "object",
        "required": ["id", "total_cases", "new_cases", "last_week", "next_week", "growth"],
        "properties": {
            "id": {"type": "string"},
            "total_cases": {"type": "integer"},
            "new_cases": {"type": "integer", "description": "New cases on the as_of day."},
            "last_week": {
                "type": ["integer", "null"],
                "description": "New cases of the window_days days up to as_of (null: no history).",
            },
            "next_week": {
                "type": "number",
                "description": "Forecast new cases of the window_days days after as_of.",
            },
            "growth": {
                "type": ["number", "null"],
                "description": "next_week / last_week - 1 (null when last_week is 0 or null).",
            },
        },
    },
    "TractSummaries": {
        "type": "object",
        "required": ["as_of", "window_days", "model_version", "data_version", "tracts"],
        "properties": {
            "as_of": {"type": "string", "format": "date"},
            "window_days": {"type": "integer", "minimum": 1, "maximum": 7},
            "model_version": {"type": "string"},
            "data_version": {"type": "string"},
            "tracts": {"type": "array", "items": _ref("TractSummary")},
        },
    },
    "TractHistory": {
        "type": "object",
        "required": [
            "tract_id",
            "as_of",
            "model_version",
            "data_version",
            "total_cases",
            "new_cases",
            "history",
            "forecast",
            "earlier",
        ],
        "properties": {
            "tract_id": {"type": "string"},
            "as_of": {"type": "string", "format": "date"},
            "model_version": {"type": "string"},
            "data_version": {"type": "string"},
            "total_cases": {"type": "integer"},
            "new_cases": {"type": "integer"},
            "history": {
                "type": "array",
                "description": "Daily new cases up to as_of, oldest first.",
                "items": {
                    "type": "object",
                    "required": ["date", "new_cases"],
                    "properties": {
                        "date": {"type": "string", "format": "date"},
                        "new_cases": {"type": "integer"},
                    },
                },
            },
            "forecast": {"type": "array", "items": _ref("ForecastDay")},
            "earlier": {
                "type": "array",
                "description": "Forecasts of other bundles in the store, older data first.",
                "items": {
                    "type": "object",
                    "required": ["model_version", "data_version", "as_of", "forecast"],
                    "properties": {
                        "model_version": {"type": "string"},
                        "data_version": {"type": "string"},
                        "as_of": {"type": "string", "format": "date"},
                        "forecast": {"type": "array", "items": _ref("ForecastDay")},
                    },
                },
            },
        },
    },
}


def _paths() -> dict[str, Schema]:
    points_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref("PointsRequest")}},
    }
    return {
        "/v1/forecast": {
            "get": {
                "tags": ["forecast"],
                "operationId": "forecastForPoint",
                "summary": "Counts and forecast of the tract containing a point.",
                "parameters": [LAT, LON, HORIZON, MODEL_VERSION],
                "responses": {
                    "200": _json(_ref("Forecast"), "The tract's counts and forecast."),
                    **_errors(400, 404, 503),
                },
            },
            "post": {
                "tags": ["forecast"],
                "operationId": "forecastForPoints",
                "summary": "One forecast answer per point (errors inline per point).",
                "parameters": [HORIZON, MODEL_VERSION],
                "requestBody": points_body,
                "responses": {
                    "200": _json(_ref("BatchForecast"), "One result per point, in order."),
                    **_errors(400, 404, 413, 415, 503),
                },
            },
        },
        "/v1/stats/radius": {
            "get": {
                "tags": ["forecast"],
                "operationId": "radiusStats",
                "summary": "Counts of every tract whose polygon meets a circle, and totals.",
                "parameters": [LAT, LON, RADIUS, MODEL_VERSION],
                "responses": {
                    "200": _json(_ref("RadiusStats"), "Tracts meeting the circle."),
                    **_errors(400, 404, 503),
                },
            }
        },
        "/v1/tracts/lookup": {
            "get": {
                "tags": ["tracts"],
                "operationId": "tractForPoint",
                "summary": "The tract containing a point (geo service).",
                "parameters": [LAT, LON],
                "responses": {
                    "200": _json(_ref("TractLookup"), "The tract."),
                    **_errors(400, 404, 503),
                },
            },
            "post": {
                "tags": ["tracts"],
                "operationId": "tractsForPoints",
                "summary": "The tract of each point, null outside every tract (geo service).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["points"],
                                "properties": {
                                    "points": {
                                        "type": "array",
                                        "items": _ref("Point"),
                                        "minItems": 1,
                                        "maxItems": 10000,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("TractLookupBatch"), "One result per point."),
                    **_errors(400, 413, 415, 503),
                },
            },
        },
        "/v1/tracts/radius": {
            "get": {
                "tags": ["tracts"],
                "operationId": "tractsInRadius",
                "summary": "Tracts whose polygon meets a circle, with geodesic km (geo service).",
                "parameters": [LAT, LON, RADIUS],
                "responses": {
                    "200": _json(_ref("TractsInRadius"), "Nearest first."),
                    **_errors(400, 503),
                },
            }
        },
        "/v1/tracts": {
            "get": {
                "tags": ["tracts"],
                "operationId": "listTracts",
                "summary": "Every tract of the served layer, and which properties name them.",
                "responses": {
                    "200": _json(_ref("TractList"), "The tracts, in layer order."),
                    **_errors(503),
                },
            }
        },
        "/v1/tracts/{tract_id}": {
            "get": {
                "tags": ["tracts"],
                "operationId": "tractOutline",
                "summary": "One tract's outline as a GeoJSON Feature (geo service).",
                "parameters": [TRACT_PATH],
                "responses": {
                    "200": _json(_ref("TractOutline"), "The tract and its polygon."),
                    **_errors(404, 503),
                },
            }
        },
        "/v1/tracts/geojson": {
            "get": {
                "tags": ["tracts"],
                "operationId": "tractOutlines",
                "summary": "Every tract's outline in one GeoJSON FeatureCollection (geo service).",
                "responses": {
                    "200": {
                        "description": "The tracts, in layer order, simplified for drawing.",
                        "content": {"application/geo+json": {"schema": _ref("TractOutlines")}},
                    },
                    **_errors(503),
                },
            }
        },
        "/v1/tracts/{tract_id}/history": {
            "get": {
                "tags": ["dashboard"],
                "operationId": "tractHistory",
                "summary": "A tract's daily new cases, its forecast, and earlier forecasts.",
                "parameters": [TRACT_PATH],
                "responses": {
                    "200": _json(_ref("TractHistory"), "What happened, and what is forecast."),
                    **_errors(404, 503),
                },
            }
        },
        "/v1/dashboard/tracts": {
            "get": {
                "tags": ["dashboard"],
                "operationId": "tractSummaries",
                "summary": "Every tract's counts, last week, next week's forecast and growth.",
                "responses": {
                    "200": _json(_ref("TractSummaries"), "One summary per tract."),
                    **_errors(503),
                },
            }
        },
        "/v1/events": {
            "get": {
                "tags": ["models"],
                "operationId": "listEvents",
                "summary": "What happened to model versions: registrations, promotions, ...",
                "responses": {
                    "200": _json(_ref("EventList"), "Events, newest first."),
                    **_errors(503),
                },
            }
        },
        "/v1/models": {
            "get": {
                "tags": ["models"],
                "operationId": "listModels",
                "summary": "Every registered model version with its metrics.",
                "responses": {
                    "200": _json(_ref("ModelList"), "Versions, newest first."),
                    **_errors(503),
                },
            }
        },
        "/v1/models/current": {
            "get": {
                "tags": ["models"],
                "operationId": "currentModel",
                "summary": "The champion: the version that serves, and its bundle.",
                "responses": {
                    "200": _json(_ref("CurrentModel"), "The serving version."),
                    **_errors(404, 503),
                },
            }
        },
        "/v1/models/{version}": {
            "get": {
                "tags": ["models"],
                "operationId": "getModel",
                "summary": "One model version with its metrics and manifest.",
                "parameters": [VERSION_PATH],
                "responses": {
                    "200": _json(_ref("ModelVersion"), "The version."),
                    **_errors(400, 404, 503),
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
                    "content": {"application/json": {"schema": _ref("RollbackRequest")}},
                },
                "responses": {
                    "200": _json(_ref("AdminResult"), "The version now serving."),
                    **_errors(400, 401, 403, 404, 409, 415, 503),
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
                    "keeps serving until an admin accepts the held one here."
                ),
                "security": ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("AcceptDataRequest")}},
                },
                "responses": {
                    "200": _json(_ref("AcceptDataResult"), "The event and the release now pinned."),
                    **_errors(400, 401, 403, 404, 415, 503),
                },
            }
        },
        "/v1/admin/promote": {
            "post": {
                "tags": ["admin"],
                "operationId": "promote",
                "summary": "Make a registered version the champion.",
                "security": ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PromoteRequest")}},
                },
                "responses": {
                    "200": _json(_ref("AdminResult"), "The version now serving."),
                    **_errors(400, 401, 403, 404, 409, 415, 503),
                },
            }
        },
        "/v1/admin/retrain": {
            "post": {
                "tags": ["admin"],
                "operationId": "retrain",
                "summary": "Check the data source and retrain now.",
                "security": ADMIN,
                "responses": {
                    "202": _json(_ref("AdminResult"), "Accepted: the task that will run."),
                    **_errors(401, 403, 409, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "operationId": "healthz",
                "summary": "Liveness: the process answers.",
                "responses": {"200": _json(_ref("Status"), "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["operations"],
                "operationId": "readyz",
                "summary": "Readiness: a bundle is loaded and the geo service answers.",
                "responses": {
                    "200": _json(_ref("Status"), "Ready."),
                    "503": _json(_ref("Error"), "Not ready; the message says what is missing."),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "operationId": "metrics",
                "summary": "Prometheus metrics.",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["operations"],
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
    }


# Routes nginx answers itself before the services: not rate limited, no body size limit.
UNLIMITED = {"/healthz", "/readyz"}


def _with_gateway_answers(paths: dict[str, Schema]) -> dict[str, Schema]:
    """Add what nginx may answer on its own (414, 429, 413) and the X-Request-ID every answer
    has."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            responses.update(_errors(414))
            if path not in UNLIMITED:
                responses.update(_errors(429))
            if method == "post":
                responses.update(_errors(413))
            for response in responses.values():
                response.setdefault("headers", {}).update(REQUEST_ID)
    return paths


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, as a dict ready for jsonify."""
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
        "paths": _with_gateway_answers(_paths()),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
