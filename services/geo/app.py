"""Application factory of the geo service."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from flask import Flask

from services.common.http import register_error_handlers
from services.common.observability import init_observability
from services.common.warmup import on_warm_up
from services.geo.state import LAYER_SOURCES, IndexHolder, LayerHolders, attach_index
from services.geo.views import bp, replica_json
from tractcast.geo.index import TractIndex
from tractcast.geo.loading import tract_layer_path
from tractcast.heap import release_freed_memory
from tractcast.registry.remote import PROBE_INTERVAL, remote_layer
from tractcast.settings import Settings
from tractcast.tract_layers import tract_layers


def create_app(settings: Settings | None = None, index: TractIndex | None = None) -> Flask:
    """Build the geo service; the tract layer loads on first need unless `index` is given."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["TRACTCAST_SETTINGS"] = settings
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep their field order
    load_index(app, settings, index)
    init_observability(app, "geo")
    register_blueprints(app)
    register_error_handlers(app)
    return app


def load_index(app: Flask, settings: Settings, index: TractIndex | None) -> None:
    """Attach a holder per tract layer that reads its layer on first request (`index`, when
    given, is the first layer's)."""
    holders = LayerHolders()
    for position, layer in enumerate(tract_layers(settings)):
        holder = layer_holder(app, layer.name, layer.settings, index if position == 0 else None)
        holders[layer.name] = holder
        on_warm_up(app, partial(warm_replica, holder))  # the API asks for it as it starts
    attach_index(app, holders)
    on_warm_up(app, release_freed_memory)


def warm_replica(holder: IndexHolder) -> None:
    """Load a layer and render its replica before the first request asks."""
    replica_json(holder.get())


def layer_holder(
    app: Flask, name: str, settings: Settings, index: TractIndex | None
) -> IndexHolder:
    """The holder of the configured layer file, or (TRACTCAST_SERVING_SOURCE=s3) of the S3
    mirror's layer copied into the local cache: the copy cached last when S3 cannot be reached,
    and a new copy in the mirror replaces it within PROBE_INTERVAL seconds, with no restart."""

    def load(path: Path) -> TractIndex:
        return TractIndex.from_file(path, settings.tract_id_field)

    if settings.serving_source != "s3":
        return IndexHolder(lambda: tract_layer_path(settings), load, index)
    layer = remote_layer(settings)
    app.extensions.setdefault(LAYER_SOURCES, {})[name] = layer  # /readyz tells each one's state
    return IndexHolder(layer.path, load, index, follow_every=PROBE_INTERVAL)


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(bp)
