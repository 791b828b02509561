"""The API's state metrics: which model and data version this process serves, how old, and
whether it holds a copy of geo's layer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.metrics_core import Metric

from services.common.metrics import StateCollector, gauge
from tractcast.geo.client import LayerReplica
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


def replica_state(replica: LayerReplica) -> StateCollector:
    """Whether this process answers from a copy of geo's layer, and of which layer."""

    def read() -> Iterator[Metric]:
        copy = replica.copy
        yield gauge(
            "tractcast_geo_replica_loaded",
            "1 when this process holds a copy of geo's layer (0: geo is asked for everything).",
            0 if copy is None else 1,
        )
        if copy is not None:
            yield gauge(
                "tractcast_geo_replica_tracts",
                "Tracts of the layer this process holds a copy of.",
                len(copy.tracts),
                layer=copy.layer,
            )

    return StateCollector("geo_replica", read)


def artifact_store_state(source: object) -> list[StateCollector]:
    """Whether S3 answers, for a holder reading bundles from it (none for the local store)."""
    state = getattr(source, "state", None)
    if state is None:
        return []

    def read() -> Iterator[Metric]:
        if state.up is not None:
            yield gauge(
                "tractcast_artifact_store_up",
                "1 when S3 answered this process's last request (0: it serves from its cache).",
                1 if state.up else 0,
            )

    return [StateCollector("artifact_store", read)]


def age_seconds(created_at: str) -> float | None:
    """Seconds since an ISO 8601 time (UTC when it names no zone); None when unreadable."""
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - created).total_seconds())
