"""Render nginx/nginx.conf.template (and the optional TLS include) for a local nginx.

The templates carry `${NAME}` placeholders for envsubst; nginx's own `$variables` must survive,
so only the names given are substituted, and any `${...}` left over is an error.
"""

from __future__ import annotations

import re
from pathlib import Path

from tractcast.settings import Settings

#: The templates in a source checkout (the installed package does not ship them).
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "nginx"
#: The dashboard's files in a source checkout, served at / and /static/.
WEB_DIR = TEMPLATE_DIR.parent / "web"
NGINX_TEMPLATE = "nginx.conf.template"
TLS_TEMPLATE = "tls.conf.template"
TLS_PORT = 8443

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A value lands unquoted in a directive: anything that could end or extend it is refused.
_UNSAFE = re.compile(r"""[\s;{}'"$#\\]""")
_RATE = re.compile(r"^[1-9][0-9]{0,6}r/[sm]$")


def render_nginx_conf(template: Path, values: dict[str, str]) -> str:
    """Return the template with `${NAME}` replaced for every NAME in values; refuse leftovers."""
    for name, value in values.items():
        if not value or _UNSAFE.search(value):
            raise ValueError(f"unsafe or empty value for {name!r} in nginx config: {value!r}")
    text = Path(template).read_text()
    rendered = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    if "${" in rendered:
        left = sorted(set(re.findall(r"\$\{([^}]*)\}?", rendered)))
        raise ValueError(f"{template}: placeholders without a value: {', '.join(left)}")
    return rendered


def connect_host(host: str) -> str:
    """The address nginx dials for a service bound to host (a wildcard bind means loopback)."""
    if host in {"0.0.0.0", ""}:
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def check_rate(name: str, rate: str) -> str:
    """A limit_req rate such as 20r/s or 10r/m; ValueError naming the setting otherwise."""
    if not _RATE.match(rate):
        raise ValueError(f"{name} must look like 20r/s or 10r/m, got {rate!r}")
    return rate


def nginx_values(settings: Settings, run_dir: Path, web_dir: Path = WEB_DIR) -> dict[str, str]:
    """Placeholder values of nginx.conf.template for services running on settings.host."""
    host = connect_host(settings.host)
    return {
        "RATE_LIMIT": check_rate("TRACTCAST_RATE_LIMIT", settings.rate_limit),
        "ADMIN_RATE_LIMIT": check_rate("TRACTCAST_ADMIN_RATE_LIMIT", settings.admin_rate_limit),
        "NGINX_PORT": str(settings.http_port),
        "API_UPSTREAM": f"{host}:{settings.api_port}",
        "GEO_UPSTREAM": f"{host}:{settings.geo_port}",
        "REGISTRY_UPSTREAM": f"{host}:{settings.registry_port}",
        "RETRAINER_UPSTREAM": f"{host}:{settings.retrainer_port}",
        "NGINX_RUN_DIR": str(Path(run_dir).resolve()),
        "WEB_ROOT": str(Path(web_dir).resolve()),
    }


def tls_values(cert: Path, key: Path, port: int = TLS_PORT) -> dict[str, str]:
    """Placeholder values of tls.conf.template."""
    return {
        "TLS_PORT": str(port),
        "TLS_CERT": str(Path(cert).resolve()),
        "TLS_KEY": str(Path(key).resolve()),
    }


def write_nginx_conf(
    settings: Settings,
    run_dir: Path,
    template_dir: Path = TEMPLATE_DIR,
    tls: tuple[Path, Path] | None = None,
) -> Path:
    """Render nginx.conf into run_dir (plus conf.d/tls.conf when tls files exist); return it."""
    run_dir = Path(run_dir).resolve()
    conf_d = run_dir / "conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(
        render_nginx_conf(template_dir / NGINX_TEMPLATE, nginx_values(settings, run_dir))
    )
    tls_conf = conf_d / "tls.conf"
    if tls is not None and all(Path(p).is_file() for p in tls):
        tls_conf.write_text(render_nginx_conf(template_dir / TLS_TEMPLATE, tls_values(*tls)))
    else:
        tls_conf.unlink(missing_ok=True)
    return conf


def nginx_command(conf: Path, run_dir: Path, nginx: str = "nginx") -> list[str]:
    """The foreground nginx command line for a config written by write_nginx_conf."""
    run_dir = Path(run_dir).resolve()
    return [
        nginx,
        "-p",
        f"{run_dir}/",
        "-c",
        str(Path(conf).resolve()),
        "-e",
        str(run_dir / "error.log"),
        "-g",
        "daemon off;",
    ]
