"""The gateway's one view: pick nginx's location for the path, then answer as that location does."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, current_app, request
from urllib3.exceptions import HTTPError
from werkzeug.security import safe_join

from services.gateway.proxy import Upstreams, upstream_headers
from tractcast.gateway import (
    SECURITY_HEADERS,
    SERVICES,
    STATIC_CSP,
    STATIC_TYPES,
    RateLimiter,
    Route,
    has_bearer,
    route_for,
)
from tractcast.logs import REQUEST_ID_HEADER, request_id_from

gateway = Blueprint("gateway", __name__)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# nginx's own error answers (nginx.conf.template, "errors produced by nginx itself").
MESSAGES = {
    401: ("unauthorized", "admin routes need an Authorization: Bearer token"),
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "method not allowed"),
    413: ("too_large", "request body too large"),
    429: ("rate_limited", "too many requests, retry later"),
    503: ("unavailable", "service temporarily unavailable"),
}


@gateway.route("/", defaults={"path": ""}, methods=METHODS)
@gateway.route("/<path:path>", methods=METHODS)
def forward(path: str) -> Response:
    """Answer one request the way nginx's location for its path would."""
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    route = route_for(request.path)
    response = answer(route, request_id)
    response.headers[REQUEST_ID_HEADER] = request_id
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@gateway.route("/<path:path>", methods=["TRACE"])
def refuse_trace(path: str) -> Response:
    """nginx refuses TRACE itself, naming the methods it passes on."""
    response = error(405, request_id_from(request.headers.get(REQUEST_ID_HEADER)))
    response.headers["Allow"] = "GET, HEAD, POST, OPTIONS"
    return response


def answer(route: Route, request_id: str) -> Response:
    limiter: RateLimiter = current_app.extensions["rate_limiter"]
    client = request.remote_addr or "-"
    if route.zone and not limiter.allow(route.zone, client, route.burst):
        response = error(429, request_id)
        response.headers["Retry-After"] = "1"
        return response
    if route.admin and not has_bearer(request.headers.get("Authorization")):
        response = error(401, request_id)
        response.headers["WWW-Authenticate"] = 'Bearer realm="tractcast"'
        return response
    if (request.content_length or 0) > route.max_body:
        return error(413, request_id)
    if route.target in SERVICES:
        return proxy(route.target, request_id, client)
    if route.target == "index":
        return static_file("index.html")
    if route.target == "static":
        return static_file(request.path.removeprefix("/static/"))
    if route.target == "ok":
        return Response('{"status":"ok"}', mimetype="application/json")
    return error(404, request_id)


def proxy(service: str, request_id: str, client: str) -> Response:
    """The service's answer as it gave it; 503 in the JSON shape when it cannot be reached."""
    upstreams: Upstreams = current_app.extensions["upstreams"]
    headers = upstream_headers(list(request.headers.items()), request_id, client, request.scheme)
    path_qs = request.full_path if request.query_string else request.path
    try:
        got = upstreams.forward(service, request.method, path_qs, headers, request.get_data())
    except HTTPError:
        return error(503, request_id)
    response = Response(got.body, status=got.status)
    response.headers.clear()
    for name, value in got.headers:
        if name.lower() != REQUEST_ID_HEADER.lower():
            response.headers.add(name, value)
    return response


def static_file(relative: str) -> Response:
    """A dashboard file from web/, with the page's own CSP; 404 outside web/ or of another type."""
    web_dir = Path(current_app.config["WEB_DIR"])
    joined = safe_join(str(web_dir), relative)
    kind = STATIC_TYPES.get(Path(relative).suffix.lower())
    if joined is None or kind is None or not Path(joined).is_file():
        return error(404, request_id_from(request.headers.get(REQUEST_ID_HEADER)))
    body = b"" if request.method == "HEAD" else Path(joined).read_bytes()
    response = Response(body, content_type=kind)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = STATIC_CSP
    return response


def error(status: int, request_id: str) -> Response:
    code, message = MESSAGES[status]
    body = json.dumps(
        {"error": code, "message": message, "request_id": request_id}, separators=(",", ":")
    )
    return Response(body + "\n", status=status, mimetype="application/json")
