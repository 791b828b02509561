"""Application factory of the public prediction API."""

from __future__ import annotations

from flask import Flask

from services.api.dashboard import dashboard
from services.api.metrics import artifact_store_state, replica_state, serving_state
from services.api.views import api
from services.common.http import register_error_handlers
from services.common.observability import init_observability
from services.common.warmup import on_warm_up
from tractcast.geo.client import GeoClient
from tractcast.registry.remote import bundle_source
from tractcast.serving.holder import BundleHolder
from tractcast.serving.layers import ServedLayer, ServedLayers
from tractcast.settings import Settings
from tractcast.tract_layers import tract_layers

MAX_BODY_BYTES = 2 * 1024 * 1024  # room for the largest batch of points


def create_app(
    settings: Settings | None = None,
    geo: GeoClient | None = None,
    holder: BundleHolder | None = None,
) -> Flask:
    """Build the API; nothing is loaded or connected until the first request needs it."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    configure(app, settings)
    init_backends(app, settings, geo, holder)
    layers: ServedLayers = app.extensions["layers"]
    holders = [(layers.shown(layer), layer.holder) for layer in layers]
    replicas = [(layers.shown(layer), layer.geo.replica) for layer in layers]
    sources = [(layers.shown(layer), layer.holder.source) for layer in layers]
    state = [serving_state(holders), replica_state(replicas), *artifact_store_state(sources)]
    init_observability(app, "api", state)
    app.register_blueprint(api)
    app.register_blueprint(dashboard)
    register_error_handlers(app)
    return app


def configure(app: Flask, settings: Settings) -> None:
    app.config["TRACTCAST_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep answers in contract order


def init_backends(
    app: Flask, settings: Settings, geo: GeoClient | None, holder: BundleHolder | None
) -> None:
    """Per tract layer a geo client and a bundle holder; all lazy, shared by the process's
    threads. `geo` and `holder`, when given, are the first layer's."""
    named = settings.layers is not None
    served = []
    for position, layer in enumerate(tract_layers(settings)):
        first = position == 0
        layer_geo = (geo if first else None) or GeoClient(
            settings.geo_base_url, layer=layer.name if named else None
        )
        layer_holder = (holder if first else None) or build_holder(layer.settings)
        served.append(ServedLayer(layer.name, layer_holder, layer_geo))
        on_warm_up(app, layer_holder.loaded)
        on_warm_up(app, layer_geo.load_replica_until_held)
    app.extensions["layers"] = ServedLayers(served, named=named)


def build_holder(settings: Settings) -> BundleHolder:
    """The bundle holder of one layer, reading where that layer's settings say bundles are."""
    return BundleHolder(bundle_source(settings))
