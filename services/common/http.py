"""Flask glue every service shares: JSON errors, JSON bodies, admin guard."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from tractcast.auth import check_admin
from tractcast.errors import (
    ERRORS_BY_STATUS,
    InvalidInput,
    TractcastError,
    UnsupportedMediaType,
)
from tractcast.settings import Settings


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as {"error": code, "message": ...}, Flask's own 404/405 included."""

    @app.errorhandler(TractcastError)
    def _tractcast_error(exc: TractcastError):  # type: ignore[no-untyped-def]
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        status = exc.code or 500
        cls = ERRORS_BY_STATUS.get(status)
        code = cls.code if cls else "http_error"
        response = jsonify({"error": code, "message": exc.description or exc.name})
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        app.logger.exception("unhandled error")
        return jsonify({"error": "internal_error", "message": "internal error"}), 500


def settings_of(app: Flask | None = None) -> Settings:
    return (app or current_app).config["TRACTCAST_SETTINGS"]


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 415/400 saying what is wrong."""
    if not request.is_json:
        raise UnsupportedMediaType("send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def require_admin() -> None:
    settings = settings_of()
    check_admin(request.headers.get("Authorization"), settings.admin_token, settings.dev_mode)
