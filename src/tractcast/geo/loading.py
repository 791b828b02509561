"""Which tract layer the settings point at."""

from __future__ import annotations

from pathlib import Path

from tractcast.settings import Settings


def tract_layer_path(settings: Settings) -> Path:
    """TRACTCAST_TRACTS, or the bundled synthetic demo layer when it is not set."""
    if settings.tracts is not None:
        return Path(settings.tracts)
    from tractcast.data.demo import ensure_demo_data  # lazy: the demo generator is optional here

    _, tracts_path = ensure_demo_data(settings)
    return Path(tracts_path)
