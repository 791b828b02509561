"""Application factory of the gateway: nginx's front door where no nginx is installed."""

from __future__ import annotations

from flask import Flask

from services.gateway.proxy import Upstreams
from services.gateway.views import gateway
from tractcast.gateway import RateLimiter, parse_rate
from tractcast.nginxconf import WEB_DIR, check_rate, connect_host
from tractcast.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the gateway; it routes as nginx.conf.template does, to the services in settings."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.config["TRACTCAST_SETTINGS"] = settings
    app.config["WEB_DIR"] = WEB_DIR
    init_upstreams(app, settings)
    init_rate_limits(app, settings)
    app.register_blueprint(gateway)
    return app


def init_upstreams(app: Flask, settings: Settings) -> None:
    host = connect_host(settings.host)
    ports = {
        "api": settings.api_port,
        "geo": settings.geo_port,
        "registry": settings.registry_port,
        "retrainer": settings.retrainer_port,
    }
    app.extensions["upstreams"] = Upstreams({name: f"{host}:{p}" for name, p in ports.items()})


def init_rate_limits(app: Flask, settings: Settings) -> None:
    public = check_rate("TRACTCAST_RATE_LIMIT", settings.rate_limit)
    admin = check_rate("TRACTCAST_ADMIN_RATE_LIMIT", settings.admin_rate_limit)
    rates = {"public": parse_rate(public), "admin": parse_rate(admin)}
    app.extensions["rate_limiter"] = RateLimiter(rates)
