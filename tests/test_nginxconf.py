"""Rendering the nginx templates from Settings (tractcast.nginxconf)."""

from __future__ import annotations

import re
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

PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "small.conf.template"
    path.write_text("listen ${PORT};\nproxy_set_header X-Request-ID $request_id;\n")
    return path


def test_render_substitutes_only_the_given_names(template: Path) -> None:
    text = render_nginx_conf(template, {"PORT": "8080"})
    assert text == "listen 8080;\nproxy_set_header X-Request-ID $request_id;\n"


def test_render_refuses_a_placeholder_without_value(template: Path) -> None:
    with pytest.raises(ValueError, match="PORT"):
        render_nginx_conf(template, {"OTHER": "1"})


@pytest.mark.parametrize("value", ["", "80; include /etc/passwd", "a b", "x}", "$host"])
def test_render_refuses_values_that_would_change_the_directive(template: Path, value: str) -> None:
    with pytest.raises(ValueError, match="PORT"):
        render_nginx_conf(template, {"PORT": value})


def test_nginx_values_come_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        http_port=9000, host="10.0.0.5", api_port=1, geo_port=2, registry_port=3, retrainer_port=4
    )
    assert nginx_values(settings, tmp_path / "run") == {
        "NGINX_PORT": "9000",
        "API_UPSTREAM": "10.0.0.5:1",
        "GEO_UPSTREAM": "10.0.0.5:2",
        "REGISTRY_UPSTREAM": "10.0.0.5:3",
        "RETRAINER_UPSTREAM": "10.0.0.5:4",
        "NGINX_RUN_DIR": str((tmp_path / "run").resolve()),
        "WEB_ROOT": str((TEMPLATE_DIR.parent / "web").resolve()),
        "RATE_LIMIT": "20r/s",
        "ADMIN_RATE_LIMIT": "10r/m",
    }


@pytest.mark.parametrize(
    ("host", "upstream"),
    [("0.0.0.0", "127.0.0.1:8001"), ("::", "[::1]:8001"), ("::1", "[::1]:8001")],
)
def test_nginx_values_dial_loopback_for_wildcard_binds(
    tmp_path: Path, host: str, upstream: str
) -> None:
    assert nginx_values(Settings(host=host), tmp_path)["API_UPSTREAM"] == upstream


def test_nginx_values_name_exactly_the_template_placeholders(tmp_path: Path) -> None:
    placeholders = set(PLACEHOLDER.findall((TEMPLATE_DIR / NGINX_TEMPLATE).read_text()))
    assert placeholders == set(nginx_values(Settings(), tmp_path))


def test_tls_values_name_exactly_the_tls_template_placeholders(tmp_path: Path) -> None:
    placeholders = set(PLACEHOLDER.findall((TEMPLATE_DIR / TLS_TEMPLATE).read_text()))
    assert placeholders == set(tls_values(tmp_path / "c", tmp_path / "k"))


def test_write_nginx_conf_adds_tls_only_when_the_files_exist(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_nginx_conf(Settings(), run_dir, tls=(cert, key))
    assert not (run_dir / "conf.d" / "tls.conf").exists()

    cert.write_text("cert")
    key.write_text("key")
    write_nginx_conf(Settings(), run_dir, tls=(cert, key))
    assert f"ssl_certificate {cert.resolve()};" in (run_dir / "conf.d" / "tls.conf").read_text()

    write_nginx_conf(Settings(), run_dir)
    assert not (run_dir / "conf.d" / "tls.conf").exists()


def test_write_nginx_conf_points_everything_into_the_run_dir(tmp_path: Path) -> None:
    conf = write_nginx_conf(Settings(http_port=8181), tmp_path / "run")
    text = conf.read_text()
    run_dir = (tmp_path / "run").resolve()
    assert conf == run_dir / "nginx.conf"
    assert f"pid {run_dir}/nginx.pid;" in text
    assert "listen 8181;" in text
    assert "${" not in text


def test_nginx_command_runs_in_the_foreground(tmp_path: Path) -> None:
    command = nginx_command(tmp_path / "nginx.conf", tmp_path, nginx="/usr/sbin/nginx")
    run_dir = tmp_path.resolve()
    assert command == [
        "/usr/sbin/nginx",
        "-p",
        f"{run_dir}/",
        "-c",
        str(run_dir / "nginx.conf"),
        "-e",
        str(run_dir / "error.log"),
        "-g",
        "daemon off;",
    ]
