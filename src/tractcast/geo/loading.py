"""Which tract layer the settings point at, and loading its index."""

from __future__ import annotations

from pathlib import Path

from tractcast.geo.index import TractIndex
from tractcast.settings import Settings


def tract_layer_path(settings: Settings) -> Path:
    """TRACTCAST_TRACTS, or the bundled synthetic demo layer when it is not set."""
    if settings.tracts is not None:
        return Path(settings.tracts)
    from tractcast.data.demo import ensure_demo_data  # lazy: the demo generator is optional here

    _, tracts_path = ensure_demo_data(settings)
    return Path(tracts_path)


def load_tract_index(settings: Settings) -> TractIndex:
    """The TractIndex of the configured layer, with the configured id field if any."""
    return TractIndex.from_file(tract_layer_path(settings), settings.tract_id_field)
