"""The gateway (nginx's stand-in) against a real upstream on loopback: what a caller sees."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from tests.faults.processes import free_port
from werkzeug.serving import make_server

from services.gateway.app import create_app
from tractcast.settings import Settings


def echo_app() -> Flask:
    """An upstream that says which service it is and what it was sent."""
    app = Flask("echo")

    @app.route("/<path:path>", methods=["GET", "POST", "DELETE"])
    def echo(path: str):  # type: ignore[no-untyped-def]
        body = {
            "path": "/" + path,
            "query": request.query_string.decode(),
            "method": request.method,
            "body": request.get_data(as_text=True),
            "headers": dict(request.headers),
        }
        response = jsonify(body)
        response.headers["X-Upstream"] = "echo"
        response.headers["X-Request-ID"] = "upstream-own-id"
        return response, 201 if request.method == "POST" else 200

    return app


@pytest.fixture(scope="module")
def upstream_port() -> Iterator[int]:
    server = make_server("127.0.0.1", 0, echo_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def client(upstream_port: int, tmp_path: Path) -> FlaskClient:
    down = free_port()  # nothing listens there: the retrainer is "down"
    settings = Settings(
        api_port=upstream_port,
        geo_port=upstream_port,
        registry_port=upstream_port,
        retrainer_port=down,
        rate_limit="20r/s",
        admin_rate_limit="10r/m",
    )
    return create_app(settings).test_client()


def test_a_forecast_request_reaches_the_api_with_its_query_and_forwarding_headers(client):
    response = client.get("/v1/forecast?lat=45.46&lon=9.19", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    sent = response.get_json()
    assert sent["path"] == "/v1/forecast" and sent["query"] == "lat=45.46&lon=9.19"
    assert sent["headers"]["X-Request-Id"] == "abc-123"
    assert sent["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert response.headers["X-Request-ID"] == "abc-123"  # the gateway's id, not upstream's
    assert response.headers["X-Upstream"] == "echo"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_an_insane_request_id_is_replaced(client):
    response = client.get("/v1/forecast", headers={"X-Request-ID": "bad id; drop table"})
    assert response.headers["X-Request-ID"] != "bad id; drop table"
    assert response.get_json()["headers"]["X-Request-Id"] == response.headers["X-Request-ID"]


def test_a_batch_body_and_the_upstream_status_pass_through(client):
    response = client.post("/v1/forecast", json={"points": [{"lat": 1, "lon": 2}]})
    assert response.status_code == 201
    assert response.get_json()["body"] == '{"points": [{"lat": 1, "lon": 2}]}'


def test_admin_routes_without_a_bearer_token_get_401_before_any_service(client):
    response = client.post("/v1/admin/rollback")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with_token = client.post("/v1/admin/rollback", headers={"Authorization": "Bearer t"})
    assert with_token.get_json()["headers"]["Authorization"] == "Bearer t"


def test_a_service_that_is_down_gives_503_json(client):
    response = client.post("/v1/admin/retrain", headers={"Authorization": "Bearer t"})
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"


def test_routes_nginx_does_not_serve_are_404_json(client):
    for path in ("/v1/tracts/replica", "/v1/admin/other", "/nothing/here"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"] == "not_found"


def test_an_admin_body_over_64k_is_refused_with_413(client):
    response = client.post(
        "/v1/admin/promote", data=b"x" * 70_000, headers={"Authorization": "Bearer t"}
    )
    assert response.status_code == 413


def test_the_dashboard_page_and_its_files_come_with_their_own_csp(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b"<html" in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    script = client.get("/static/app.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"


def test_no_file_outside_the_dashboard_folder_is_served(client):
    for path in ("/static/../pyproject.toml", "/static/%2e%2e/Makefile", "/static/nope.js"):
        assert client.get(path).status_code == 404, path


def test_trace_is_refused_with_the_methods_that_pass(client):
    response = client.open("/v1/forecast", method="TRACE")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, POST, OPTIONS"


def test_a_client_past_its_burst_gets_429_with_retry_after(client):
    statuses = [client.get("/v1/models").status_code for _ in range(30)]
    assert statuses[:21] == [200] * 21  # 20r/s with a burst of 20 on /v1/models
    assert 429 in statuses[21:]
    limited = client.get("/v1/models")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
