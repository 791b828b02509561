"""The OpenAPI fragment of the geo service's routes (services/geo/views.py)."""

from __future__ import annotations

from services.common.openapi import (
    LAT,
    LAYER,
    LON,
    POINTS,
    RADIUS,
    TRACT_PATH,
    Schema,
    errors,
    json_response,
    ref,
)

SCHEMAS: dict[str, Schema] = {
    "TractLookup": {
        "type": "object",
        "required": ["tract"],
        "properties": {
            "tract": ref("Tract"),
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
            "tracts": {"type": "array", "items": ref("Tract")},
        },
    },
    "TractOutline": {
        "type": "object",
        "description": "A GeoJSON Feature: the tract's WGS84 polygon.",
        "required": ["type", "id", "properties", "geometry"],
        "properties": {
            "type": {"const": "Feature"},
            "id": {"type": "string"},
            "properties": ref("Tract"),
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
    "TractLookupBatch": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"tract": {"oneOf": [ref("Tract"), {"type": "null"}]}},
                },
            }
        },
    },
    "TractOutlines": {
        "type": "object",
        "description": "A GeoJSON FeatureCollection of every tract, outlines simplified for maps.",
        "required": ["type", "features"],
        "properties": {
            "type": {"const": "FeatureCollection"},
            "features": {"type": "array", "items": ref("TractOutline")},
        },
    },
}


def paths() -> dict[str, Schema]:
    """The geo service's public paths (fresh dicts: the assembly adds to them)."""
    return {
        "/v1/tracts/lookup": {
            "get": {
                "tags": ["tracts"],
                "operationId": "tractForPoint",
                "summary": "The tract containing a point (geo service).",
                "parameters": [LAT, LON, LAYER],
                "responses": {
                    "200": json_response(ref("TractLookup"), "The tract."),
                    **errors(400, 404, 503),
                },
            },
            "post": {
                "tags": ["tracts"],
                "operationId": "tractsForPoints",
                "summary": "The tract of each point, null outside every tract (geo service).",
                "parameters": [LAYER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["points"],
                                "properties": {"points": POINTS},
                            }
                        }
                    },
                },
                "responses": {
                    "200": json_response(ref("TractLookupBatch"), "One result per point."),
                    **errors(400, 404, 413, 415, 503),
                },
            },
        },
        "/v1/tracts/radius": {
            "get": {
                "tags": ["tracts"],
                "operationId": "tractsInRadius",
                "summary": "Tracts whose polygon meets a circle, with geodesic km (geo service).",
                "parameters": [LAT, LON, RADIUS, LAYER],
                "responses": {
                    "200": json_response(ref("TractsInRadius"), "Nearest first."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/tracts": {
            "get": {
                "tags": ["tracts"],
                "operationId": "listTracts",
                "summary": "Every tract of the served layer, and which properties name them.",
                "parameters": [LAYER],
                "responses": {
                    "200": json_response(ref("TractList"), "The tracts, in layer order."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/tracts/{tract_id}": {
            "get": {
                "tags": ["tracts"],
                "operationId": "tractOutline",
                "summary": "One tract's outline as a GeoJSON Feature (geo service).",
                "parameters": [TRACT_PATH, LAYER],
                "responses": {
                    "200": json_response(ref("TractOutline"), "The tract and its polygon."),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/tracts/geojson": {
            "get": {
                "tags": ["tracts"],
                "operationId": "tractOutlines",
                "summary": "Every tract's outline in one GeoJSON FeatureCollection (geo service).",
                "parameters": [LAYER],
                "responses": {
                    "200": {
                        "description": "The tracts, in layer order, simplified for drawing.",
                        "content": {"application/geo+json": {"schema": ref("TractOutlines")}},
                    },
                    **errors(400, 404, 503),
                },
            }
        },
    }
