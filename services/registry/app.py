"""The registry service's application factory."""

from __future__ import annotations

import threading

from flask import Flask

from services.common.http import register_error_handlers, settings_of
from services.common.metrics import registry_state
from services.common.observability import init_observability
from services.registry.views import STORES_KEY, blueprint
from tractcast.registry.lifecycle import open_stores
from tractcast.registry.metadata import SqlMetadataStore
from tractcast.registry.store import LocalModelStore
from tractcast.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the registry app; stores open on the first request that needs them."""
    app = Flask(__name__)
    app.config["TRACTCAST_SETTINGS"] = settings or Settings.from_env()
    register_error_handlers(app)
    init_stores(app)
    live_days = settings_of(app).rollback_days
    init_observability(app, "registry", [registry_state(app.extensions[STORES_KEY].get, live_days)])
    register_blueprints(app)
    return app


def init_stores(app: Flask) -> None:
    app.extensions[STORES_KEY] = LazyStores(settings_of(app))


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(blueprint)


class LazyStores:
    """The model store and metadata store, opened once, on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._stores: tuple[LocalModelStore, SqlMetadataStore] | None = None

    def get(self) -> tuple[LocalModelStore, SqlMetadataStore]:
        with self._lock:
            if self._stores is None:
                self._stores = open_stores(self._settings)
            return self._stores

    def close(self) -> None:
        with self._lock:
            if self._stores is not None:
                self._stores[1].close()
                self._stores = None
