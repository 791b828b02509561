"""The registry service's application factory."""

from __future__ import annotations

import threading

from flask import Flask

from services.common.http import register_error_handlers, settings_of
from services.common.metrics import registry_state
from services.common.observability import init_observability
from services.registry.views import LAYERS_KEY, REGISTRY_KEY, blueprint
from tractcast.registry import Registry
from tractcast.registry.remote import serving_registry
from tractcast.settings import Settings
from tractcast.tract_layers import tract_layers


def create_app(settings: Settings | None = None) -> Flask:
    """Build the registry app; the registry opens on the first request that needs it."""
    app = Flask(__name__)
    app.config["TRACTCAST_SETTINGS"] = settings or Settings.from_env()
    register_error_handlers(app)
    init_registry(app)
    live_days = settings_of(app).rollback_days
    named = settings_of(app).layers is not None
    registries = [
        (name if named else None, registry.get)
        for name, registry in app.extensions[LAYERS_KEY].items()
    ]
    init_observability(app, "registry", [registry_state(registries, live_days)])
    register_blueprints(app)
    return app


def init_registry(app: Flask) -> None:
    """A lazy registry per tract layer; the first is also the registry of unnamed requests."""
    layers = {layer.name: LazyRegistry(layer.settings) for layer in tract_layers(settings_of(app))}
    app.extensions[LAYERS_KEY] = layers
    app.extensions[REGISTRY_KEY] = next(iter(layers.values()))


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(blueprint)


class LazyRegistry:
    """The registry, opened once, on first use: over the store directory, or (on a host
    without it, TRACTCAST_SERVING_SOURCE=s3) over the metadata database and the S3 mirror."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._registry: Registry | None = None

    def get(self) -> Registry:
        with self._lock:
            if self._registry is None:
                self._registry = serving_registry(self._settings)
            return self._registry

    def close(self) -> None:
        with self._lock:
            if self._registry is not None:
                self._registry.close()
                self._registry = None
