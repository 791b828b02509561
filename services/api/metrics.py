"""The API's state metrics: which model and data version this process serves (per layer), how
old, and whether it holds a copy of geo's layer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from services.common.metrics import StateCollector, gauge
from tractcast.geo.client import LayerReplica
from tractcast.serving.holder import BundleHolder


def serving_state(holders: Sequence[tuple[str | None, BundleHolder]]) -> StateCollector:
    """Gauges describing the bundle each layer answers from, read at every scrape: one sample
    per layer, labelled `layer` with a layers file (name None: the one unnamed layer, no label)."""
    named = any(name is not None for name, _ in holders)

    def family(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            name, documentation, labels=["layer", *labels] if named else [*labels]
        )

    def read() -> Iterator[Metric]:
        loaded = family("tractcast_serving_bundle_loaded", "1 when a serving bundle is loaded.")
        info = family(
            "tractcast_serving_info",
            "The model version and data version being served (value always 1).",
            "model_version",
            "data_version",
            "bundle_id",
        )
        tracts = family("tractcast_serving_tracts", "Tracts the serving bundle answers for.")
        ages = family(
            "tractcast_serving_bundle_age_seconds", "Seconds since the serving bundle was created."
        )
        for name, holder in holders:
            layer = [name] if named and name is not None else []
            bundle = holder.loaded()
            loaded.add_metric(layer, 0 if bundle is None else 1)
            if bundle is None:
                continue
            versions = [bundle.model_version, bundle.data_version, bundle.bundle_id]
            info.add_metric([*layer, *versions], 1)
            tracts.add_metric(layer, len(bundle.tracts))
            age = age_seconds(bundle.created_at)
            if age is not None:
                ages.add_metric(layer, age)
        yield from (metric for metric in (loaded, info, tracts, ages) if metric.samples)

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
