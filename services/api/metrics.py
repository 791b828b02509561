"""The API's state metrics: which model and data version this process serves, how old, and
whether it holds a copy of geo's lookup grid."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.metrics_core import Metric

from services.common.metrics import StateCollector, gauge
from tractcast.geo.client import GridReplica
from tractcast.serving.holder import BundleHolder


def serving_state(holder: BundleHolder) -> StateCollector:
    """Gauges describing the bundle this process answers from, read at every scrape."""

    def read() -> Iterator[Metric]:
        bundle = holder.loaded()
        yield gauge(
            "tractcast_serving_bundle_loaded",
            "1 when a serving bundle is loaded.",
            0 if bundle is None else 1,
        )
        if bundle is None:
            return
        yield gauge(
            "tractcast_serving_info",
            "The model version and data version being served (value always 1).",
            1,
            model_version=bundle.model_version,
            data_version=bundle.data_version,
            bundle_id=bundle.bundle_id,
        )
        yield gauge(
            "tractcast_serving_tracts", "Tracts the serving bundle answers for.", len(bundle.tracts)
        )
        age = age_seconds(bundle.created_at)
        if age is not None:
            yield gauge(
                "tractcast_serving_bundle_age_seconds",
                "Seconds since the serving bundle was created.",
                age,
            )

    return StateCollector("serving", read)


def grid_state(grid: GridReplica) -> StateCollector:
    """Whether this process answers points from a copy of geo's grid, and of which layer."""

    def read() -> Iterator[Metric]:
        layer = grid.layer
        yield gauge(
            "tractcast_geo_grid_loaded",
            "1 when this process holds geo's lookup grid (0: geo is asked for every point).",
            0 if layer is None else 1,
        )
        if layer is not None:
            yield gauge(
                "tractcast_geo_grid_tracts",
                "Tracts of the layer whose grid this process holds.",
                len(layer[1]),
                layer=layer[0],
            )

    return StateCollector("geo_grid", read)


def age_seconds(created_at: str) -> float | None:
    """Seconds since an ISO 8601 time (UTC when it names no zone); None when unreadable."""
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - created).total_seconds())
