"""nginx/nginx.conf.template and tls.conf.template render into configs nginx accepts and obeys."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tractcast.nginxconf import (
    NGINX_TEMPLATE,
    TEMPLATE_DIR,
    TLS_TEMPLATE,
    nginx_command,
    nginx_values,
    render_nginx_conf,
    tls_values,
    write_nginx_conf,
)
from tractcast.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NGINX_VARIABLES = [
    "$request_id",
    "$http_x_request_id",
    "$binary_remote_addr",
    "$proxy_add_x_forwarded_for",
    "$remote_addr",
    "$host",
    "$scheme",
    "$tc_request_id",
]


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail("nginx is not installed: install it (apt-get install nginx); CI installs it")
    return found


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed: apt-get install openssl; CI installs it")
    cert_dir = tmp_path_factory.mktemp("certs")
    subprocess.run(
        ["sh", str(ROOT / "nginx" / "make-self-signed-cert.sh"), str(cert_dir)],
        check=True,
        capture_output=True,
    )
    return cert_dir / "tls.crt", cert_dir / "tls.key"


def nginx_test(nginx_bin: str, conf: Path, run_dir: Path) -> None:
    command = nginx_command(conf, run_dir, nginx=nginx_bin)[:-2] + ["-t"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_rendered_conf_keeps_nginx_variables_and_leaves_no_placeholder(tmp_path: Path) -> None:
    text = render_nginx_conf(TEMPLATE_DIR / NGINX_TEMPLATE, nginx_values(Settings(), tmp_path))
    assert "${" not in text
    for variable in NGINX_VARIABLES:
        assert variable in text, variable


def test_rendered_conf_passes_nginx_t(tmp_path: Path, nginx_bin: str) -> None:
    conf = write_nginx_conf(Settings(), tmp_path / "run")
    nginx_test(nginx_bin, conf, tmp_path / "run")


def test_rendered_conf_passes_nginx_t_without_a_conf_d_dir(tmp_path: Path, nginx_bin: str) -> None:
    run_dir = (tmp_path / "run").resolve()
    run_dir.mkdir()
    conf = run_dir / "nginx.conf"
    conf.write_text(
        render_nginx_conf(TEMPLATE_DIR / NGINX_TEMPLATE, nginx_values(Settings(), run_dir))
    )
    nginx_test(nginx_bin, conf, run_dir)


def test_rendered_conf_with_tls_passes_nginx_t(
    tmp_path: Path, nginx_bin: str, certificate: tuple[Path, Path]
) -> None:
    conf = write_nginx_conf(Settings(), tmp_path / "run", tls=certificate)
    tls_conf = (tmp_path / "run" / "conf.d" / "tls.conf").read_text()
    assert "listen 8443 ssl;" in tls_conf
    assert "${" not in tls_conf
    nginx_test(nginx_bin, conf, tmp_path / "run")


def test_container_entrypoint_renders_the_same_config_as_python(
    tmp_path: Path, nginx_bin: str, certificate: tuple[Path, Path]
) -> None:
    if shutil.which("envsubst") is None:
        pytest.fail("envsubst is not installed: apt-get install gettext-base; CI installs it")
    run_dir = (tmp_path / "container").resolve()
    values = nginx_values(Settings(), run_dir) | tls_values(*certificate)
    env = os.environ | values | {"TEMPLATE_DIR": str(TEMPLATE_DIR)}
    env["PATH"] = f"{env.get('PATH', '')}:{Path(nginx_bin).parent}"
    result = subprocess.run(
        ["sh", str(ROOT / "nginx" / "docker-entrypoint.sh"), "-t"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    python_conf = render_nginx_conf(TEMPLATE_DIR / NGINX_TEMPLATE, values)
    python_tls = render_nginx_conf(TEMPLATE_DIR / TLS_TEMPLATE, tls_values(*certificate))
    assert (run_dir / "nginx.conf").read_text() == python_conf
    assert (run_dir / "conf.d" / "tls.conf").read_text() == python_tls


# ---- a real nginx in front of stub services -------------------------------------------------


class _Stub(BaseHTTPRequestHandler):
    """Answers every request with which upstream got it and what nginx forwarded."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms delayed-ACK waits

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps(
            {
                "upstream": self.server.name,  # type: ignore[attr-defined]
                "path": self.path,
                "request_id": self.headers.get("X-Request-ID"),
                "connection": self.headers.get("Connection"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-ID", "the-service-echo")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, http.client.HTTPMessage, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, json.loads(response.read() or b"null")
    finally:
        conn.close()


@pytest.fixture
def gateway(
    tmp_path: Path, nginx_bin: str, certificate: tuple[Path, Path]
) -> Iterator[tuple[int, int]]:
    """nginx on free ports over live api/geo/registry stubs and a dead retrainer."""
    stubs = []
    for name in ("api", "geo", "registry"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        stubs.append(server)
    http_port, tls_port = free_port(), free_port()
    run_dir = (tmp_path / "run").resolve()
    (run_dir / "conf.d").mkdir(parents=True)
    values = nginx_values(Settings(http_port=http_port), run_dir) | {
        "API_UPSTREAM": f"127.0.0.1:{stubs[0].server_port}",
        "GEO_UPSTREAM": f"127.0.0.1:{stubs[1].server_port}",
        "REGISTRY_UPSTREAM": f"127.0.0.1:{stubs[2].server_port}",
        "RETRAINER_UPSTREAM": f"127.0.0.1:{free_port()}",
    }
    conf = run_dir / "nginx.conf"
    conf.write_text(render_nginx_conf(TEMPLATE_DIR / NGINX_TEMPLATE, values))
    (run_dir / "conf.d" / "tls.conf").write_text(
        render_nginx_conf(TEMPLATE_DIR / TLS_TEMPLATE, tls_values(*certificate, port=tls_port))
    )
    proc = subprocess.Popen(
        nginx_command(conf, run_dir, nginx=nginx_bin),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if request(http_port, "GET", "/healthz/nginx")[0] == 200:
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((run_dir / "error.log").read_text()) from None
                time.sleep(0.05)
        yield http_port, tls_port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for server in stubs:
            server.shutdown()
            server.server_close()


@pytest.mark.e2e
def test_gateway_routes_each_public_path_to_its_service(gateway: tuple[int, int]) -> None:
    port, _ = gateway
    routes = {
        "/v1/forecast?lat=45&lon=9": "api",
        "/v1/stats/radius?lat=45&lon=9&radius_km=5": "api",
        "/healthz": "api",
        "/readyz": "api",
        "/metrics": "api",
        "/openapi.json": "api",
        "/v1/tracts/lookup?lat=45&lon=9": "geo",
        "/v1/models/current": "registry",
        "/v1/events": "registry",
        "/v1/tracts/015": "geo",
        "/v1/tracts/015/history": "api",
        "/v1/dashboard/tracts": "api",
    }
    for path, upstream in routes.items():
        status, _, body = request(port, "GET", path)
        assert (status, body["upstream"], body["path"]) == (200, upstream, path)
        assert body["connection"] is None  # keepalive to upstreams: Connection "" is sent
    status, _, body = request(
        port, "POST", "/v1/admin/promote", {"Authorization": "Bearer t"}, b"{}"
    )
    assert (status, body["upstream"]) == (200, "registry")


@pytest.mark.e2e
def test_gateway_passes_a_request_id_through_or_makes_one(gateway: tuple[int, int]) -> None:
    port, _ = gateway
    _, headers, body = request(port, "GET", "/healthz", {"X-Request-ID": "abc-123"})
    assert body["request_id"] == headers["X-Request-ID"] == "abc-123"
    _, headers, body = request(port, "GET", "/healthz", {"X-Request-ID": "not valid!"})
    assert body["request_id"] == headers["X-Request-ID"] != "not valid!"
    assert len(body["request_id"]) == 32


@pytest.mark.e2e
def test_gateway_answers_its_own_errors_in_json(gateway: tuple[int, int]) -> None:
    port, _ = gateway
    cases = [
        (("GET", "/nowhere", {}, b""), 404, "not_found"),
        (("TRACE", "/v1/forecast", {}, b""), 405, "method_not_allowed"),
        (("GET", "/v1/forecast?lat=" + "4" * 5000, {}, b""), 414, "uri_too_long"),
        (("POST", "/v1/forecast?lat=" + "4" * 5000, {}, b"{}"), 414, "uri_too_long"),
        (("GET", "/v1/forecast", {"X-Padding": "x" * 5000}, b""), 400, "invalid_input"),
        (("POST", "/v1/forecast", {}, b"x" * (3 * 1024 * 1024)), 413, "too_large"),
        (("POST", "/v1/admin/retrain", {}, b""), 401, "unauthorized"),
        (("POST", "/v1/admin/retrain", {"Authorization": "Bearer t"}, b""), 503, "unavailable"),
        (("POST", "/v1/admin/unknown", {"Authorization": "Bearer t"}, b""), 404, "not_found"),
    ]
    for (method, path, headers, body), status, code in cases:
        got_status, got_headers, got = request(port, method, path, headers, body)
        assert (got_status, got["error"]) == (status, code), path
        assert got_headers["Content-Type"] == "application/json"
        assert got["request_id"] == got_headers["X-Request-ID"]
        assert got_headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.e2e
def test_gateway_sends_security_headers(gateway: tuple[int, int]) -> None:
    port, _ = gateway
    _, headers, _ = request(port, "GET", "/v1/forecast?lat=1&lon=2")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in headers  # plain HTTP
    assert "Server" not in headers or "nginx/" not in headers["Server"]


@pytest.mark.e2e
def test_gateway_rate_limits_admin_routes_with_429(gateway: tuple[int, int]) -> None:
    port, _ = gateway
    statuses = [
        request(port, "POST", "/v1/admin/promote", {"Authorization": "Bearer t"}, b"{}")[0]
        for _ in range(10)
    ]
    assert statuses[0] == 200
    assert 429 in statuses
    status, headers, body = request(
        port, "POST", "/v1/admin/promote", {"Authorization": "Bearer t"}, b"{}"
    )
    assert (status, body["error"], headers["Retry-After"]) == (429, "rate_limited", "1")


@pytest.mark.e2e
def test_gateway_serves_the_same_routes_over_tls(gateway: tuple[int, int]) -> None:
    _, tls_port = gateway
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", tls_port, timeout=5, context=context)
    try:
        conn.request("GET", "/v1/tracts/lookup?lat=1&lon=2")
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert (response.status, body["upstream"]) == (200, "geo")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.e2e
def test_gateway_leaves_methods_to_the_services_and_refuses_trace_with_allow(
    gateway: tuple[int, int],
) -> None:
    port, _ = gateway
    status, _, body = request(port, "DELETE", "/v1/forecast")
    assert (status, body["upstream"]) == (200, "api")  # the service answers 405 + its Allow
    status, headers, body = request(port, "TRACE", "/healthz")
    assert (status, body["error"]) == (405, "method_not_allowed")
    assert headers["Allow"] == "GET, HEAD, POST, OPTIONS"


@pytest.mark.e2e
def test_gateway_sends_one_request_id_header_its_own(gateway: tuple[int, int]) -> None:
    port, _ = gateway
    _, headers, body = request(port, "GET", "/healthz", {"X-Request-ID": "abc-123"})
    assert headers.get_all("X-Request-ID") == ["abc-123"]


@pytest.mark.e2e
def test_gateway_rate_limits_public_routes_per_client_with_a_burst(
    gateway: tuple[int, int],
) -> None:
    port, _ = gateway
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    statuses = []
    try:
        for _ in range(150):  # one keep-alive connection: far over 20 requests/s
            conn.request("GET", "/v1/tracts/lookup?lat=1&lon=2")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()
    assert statuses[:30] == [200] * 30  # the burst goes through at once
    assert statuses.count(429) > 50


def test_rate_limits_come_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(rate_limit="300r/s", admin_rate_limit="5r/m")
    text = render_nginx_conf(TEMPLATE_DIR / NGINX_TEMPLATE, nginx_values(settings, tmp_path))
    assert "zone=tc_public:10m rate=300r/s;" in text
    assert "zone=tc_admin:1m rate=5r/m;" in text


@pytest.mark.parametrize("rate", ["20", "20r/h", "0r/s", "20r/s;", "fast"])
def test_a_malformed_rate_limit_is_refused(tmp_path: Path, rate: str) -> None:
    with pytest.raises(ValueError, match="TRACTCAST_RATE_LIMIT must look like 20r/s"):
        nginx_values(Settings(rate_limit=rate), tmp_path)
