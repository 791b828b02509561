"""The OpenAPI fragment of the api's routes, and the whole document the api serves.

Each service describes its own routes beside them (`services/<name>/openapi.py`); limits come
from the code that enforces them (`tractcast.validation`, `Settings.horizon`, the registry's
version pattern), never from a copy.
"""

from __future__ import annotations

from typing import Any

from services.common.openapi import (
    LAT,
    LAYER,
    LON,
    POINTS,
    RADIUS,
    TRACT_PATH,
    Schema,
    assemble,
    errors,
    json_response,
    query,
    ref,
)
from services.geo import openapi as geo
from services.registry import openapi as registry
from services.retrainer import openapi as retrainer
from tractcast.serving.dashboard import WEEK
from tractcast.validation import PINNED_VERSION_PATTERN

MODEL_VERSION = query(
    "model_version",
    {"type": "string", "pattern": PINNED_VERSION_PATTERN, "examples": ["v0003-lstm"]},
    "Answer with the newest bundle of this model version instead of the champion.",
    required=False,
)


def schemas(horizon: int) -> dict[str, Schema]:
    """The api's schemas; `horizon` is the longest forecast it serves (Settings.horizon)."""
    return {
        "PointsRequest": {
            "type": "object",
            "required": ["points"],
            "properties": {
                "points": POINTS,
                "horizon": {"type": "integer", "minimum": 1, "maximum": horizon},
            },
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
                        "Every central prediction interval of the day, keyed by its level in "
                        'percent ("50", "80", "95"); "80" repeats lower/upper. A model registered '
                        'before the other levels existed gives "80" only.'
                    ),
                    "additionalProperties": ref("Interval"),
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
                "tract": ref("Tract"),
                "as_of": {"type": "string", "format": "date", "description": "Last observed day."},
                "total_cases": {"type": "integer", "description": "Cumulative cases on as_of."},
                "new_cases": {"type": "integer", "description": "New cases on as_of."},
                "next_day": ref("ForecastDay"),
                "forecast": {"type": "array", "items": ref("ForecastDay"), "maxItems": horizon},
                "layer": {
                    "type": "string",
                    "description": "The tract layer that answered (with a layers file).",
                },
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
                    "items": {"oneOf": [ref("Forecast"), ref("Error")]},
                },
                "layer": {
                    "type": "string",
                    "description": "The tract layer that answered (with a layers file).",
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
                "next_day": ref("ForecastDay"),
            },
        },
        "RadiusStats": {
            "type": "object",
            "required": [
                "center",
                "radius_km",
                "tracts",
                "totals",
                "model_version",
                "data_version",
            ],
            "properties": {
                "center": ref("Point"),
                "radius_km": {"type": "number"},
                "tracts": {"type": "array", "items": ref("RadiusTract")},
                "without_data": {
                    "type": "array",
                    "description": "Tracts meeting the circle that the bundle has no data for.",
                    "items": ref("Tract"),
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
                "layer": {
                    "type": "string",
                    "description": "The tract layer that answered (with a layers file).",
                },
                "model_version": {"type": "string"},
                "data_version": {"type": "string"},
            },
        },
        "Layers": {
            "type": "object",
            "required": ["layers"],
            "properties": {
                "layers": {
                    "type": "array",
                    "description": "The served tract layers, in the layers file's order.",
                    "items": {
                        "type": "object",
                        "required": ["name", "tracts", "model_version", "bundle", "data_version"],
                        "properties": {
                            "name": {"type": "string"},
                            "tracts": {"type": ["integer", "null"], "minimum": 0},
                            "tracts_with_forecast": {"type": ["integer", "null"], "minimum": 0},
                            "model_version": {
                                "type": ["string", "null"],
                                "description": "The layer's champion (null: no bundle yet).",
                            },
                            "bundle": {"type": ["string", "null"]},
                            "data_version": {
                                "type": ["string", "null"],
                                "description": "The data release the bundle was made from.",
                            },
                            "as_of": {"type": ["string", "null"], "format": "date"},
                        },
                    },
                }
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
                    "description": (
                        "New cases of the window_days days up to as_of (null: no history)."
                    ),
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
                "window_days": {"type": "integer", "minimum": 1, "maximum": WEEK},
                "model_version": {"type": "string"},
                "data_version": {"type": "string"},
                "tracts": {"type": "array", "items": ref("TractSummary")},
                "layer": {
                    "type": "string",
                    "description": "The tract layer asked for (with a layers file).",
                },
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
                "forecast": {"type": "array", "items": ref("ForecastDay")},
                "layer": {
                    "type": "string",
                    "description": "The tract layer asked for (with a layers file).",
                },
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
                            "forecast": {"type": "array", "items": ref("ForecastDay")},
                        },
                    },
                },
            },
        },
    }


def paths(horizon: int) -> dict[str, Schema]:
    """The api's public paths (fresh dicts: the assembly adds to them)."""
    horizon_query = query(
        "horizon",
        {"type": "integer", "minimum": 1, "maximum": horizon, "default": horizon},
        "How many forecast days to return.",
        required=False,
    )
    points_body = {
        "required": True,
        "content": {"application/json": {"schema": ref("PointsRequest")}},
    }
    return {
        "/v1/forecast": {
            "get": {
                "tags": ["forecast"],
                "operationId": "forecastForPoint",
                "summary": "Counts and forecast of the tract containing a point.",
                "parameters": [LAT, LON, horizon_query, MODEL_VERSION, LAYER],
                "responses": {
                    "200": json_response(ref("Forecast"), "The tract's counts and forecast."),
                    **errors(400, 404, 503),
                },
            },
            "post": {
                "tags": ["forecast"],
                "operationId": "forecastForPoints",
                "summary": "One forecast answer per point (errors inline per point).",
                "parameters": [horizon_query, MODEL_VERSION, LAYER],
                "requestBody": points_body,
                "responses": {
                    "200": json_response(ref("BatchForecast"), "One result per point, in order."),
                    **errors(400, 404, 413, 415, 503),
                },
            },
        },
        "/v1/stats/radius": {
            "get": {
                "tags": ["forecast"],
                "operationId": "radiusStats",
                "summary": "Counts of every tract whose polygon meets a circle, and totals.",
                "parameters": [LAT, LON, RADIUS, MODEL_VERSION, LAYER],
                "responses": {
                    "200": json_response(ref("RadiusStats"), "Tracts meeting the circle."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/tracts/{tract_id}/history": {
            "get": {
                "tags": ["dashboard"],
                "operationId": "tractHistory",
                "summary": "A tract's daily new cases, its forecast, and earlier forecasts.",
                "parameters": [TRACT_PATH, LAYER],
                "responses": {
                    "200": json_response(
                        ref("TractHistory"), "What happened, and what is forecast."
                    ),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/layers": {
            "get": {
                "tags": ["forecast"],
                "operationId": "listLayers",
                "summary": "The served tract layers: tracts, champion, bundle and data release.",
                "responses": {"200": json_response(ref("Layers"), "Finest first.")},
            }
        },
        "/v1/dashboard/tracts": {
            "get": {
                "tags": ["dashboard"],
                "operationId": "tractSummaries",
                "summary": "Every tract's counts, last week, next week's forecast and growth.",
                "parameters": [LAYER],
                "responses": {
                    "200": json_response(ref("TractSummaries"), "One summary per tract."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "operationId": "healthz",
                "summary": "Liveness: the process answers.",
                "responses": {"200": json_response(ref("Status"), "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["operations"],
                "operationId": "readyz",
                "summary": "Readiness: a bundle is loaded and the geo service answers.",
                "responses": {
                    "200": json_response(ref("Status"), "Ready."),
                    "503": json_response(
                        ref("Error"), "Not ready; the message says what is missing."
                    ),
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
                "responses": {"200": json_response({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
    }


def openapi_document(horizon: int) -> dict[str, Any]:
    """The OpenAPI document of the whole public surface behind nginx (api, geo, registry,
    admin), as a dict ready for jsonify."""
    return assemble(
        {**paths(horizon), **geo.paths(), **registry.paths(), **retrainer.paths()},
        {**schemas(horizon), **geo.SCHEMAS, **registry.SCHEMAS},
    )
