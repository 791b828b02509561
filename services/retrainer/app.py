"""The retrainer's web face: admin retrain trigger and health."""

from __future__ import annotations

from flask import Flask

from services.common.http import register_error_handlers
from services.common.observability import init_observability
from tractcast.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    app = Flask(__name__)
    app.config["TRACTCAST_SETTINGS"] = settings or Settings.from_env()
    init_observability(app, "retrainer")
    register_blueprints(app)
    register_error_handlers(app)
    return app


def register_blueprints(app: Flask) -> None:
    from services.retrainer.views import bp

    app.register_blueprint(bp)
