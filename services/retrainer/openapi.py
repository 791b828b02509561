"""The OpenAPI fragment of the retrainer service's routes (services/retrainer/views.py)."""

from __future__ import annotations

from services.common.openapi import ADMIN, LAYER, Schema, errors, json_response, ref


def paths() -> dict[str, Schema]:
    """The retrainer's public paths (fresh dicts: the assembly adds to them)."""
    return {
        "/v1/admin/retrain": {
            "post": {
                "tags": ["admin"],
                "operationId": "retrain",
                "summary": "Check the data source and retrain now (one layer, or each).",
                "security": ADMIN,
                "parameters": [LAYER],
                "responses": {
                    "202": json_response(ref("AdminResult"), "Accepted: the task that will run."),
                    **errors(400, 401, 403, 404, 409, 503),
                },
            }
        },
    }
