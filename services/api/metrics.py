"""The API's state metrics, per layer: which model and data version this process serves, how
old, whether it holds a copy of geo's layer, and whether S3 answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from services.common.metrics import StateCollector
from tractcast.geo.client import LayerReplica
from tractcast.serving.holder import BundleHolder

T = TypeVar("T")


Named = Sequence[tuple[str | None, T]]  # per layer: its name (None: the one unnamed layer)


def serving_state(holders: Named[BundleHolder]) -> StateCollector:
    """Gauges describing the bundle each layer answers from, read at every scrape: one sample
    per layer, labelled `layer` with a layers file (name None: the one unnamed layer, no label)."""
    family = layer_families(holders)

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
            layer = layer_label(name)
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


def replica_state(replicas: Named[LayerReplica]) -> StateCollector:
    """Whether this process answers from a copy of geo's layer, per layer. With a layers file
    the samples are labelled `layer` (its name) and the copy's fingerprint is `fingerprint`;
    with one unnamed layer the fingerprint is the `layer` label, as it always was."""
    family = layer_families(replicas)
    named = any(name is not None for name, _ in replicas)

    def read() -> Iterator[Metric]:
        loaded = family(
            "tractcast_geo_replica_loaded",
            "1 when this process holds a copy of geo's layer (0: geo is asked for everything).",
        )
        tracts = family(
            "tractcast_geo_replica_tracts",
            "Tracts of the layer this process holds a copy of.",
            *(["fingerprint"] if named else ["layer"]),
        )
        for name, replica in replicas:
            copy = replica.copy
            loaded.add_metric(layer_label(name), 0 if copy is None else 1)
            if copy is not None:
                tracts.add_metric([*layer_label(name), copy.layer], len(copy.tracts))
        yield from (metric for metric in (loaded, tracts) if metric.samples)

    return StateCollector("geo_replica", read)


def artifact_store_state(sources: Named[Any]) -> list[StateCollector]:
    """Whether S3 answers, per layer whose holder reads bundles from it (none for the local
    store)."""
    states = [
        (name, source.state)
        for name, source in sources
        if getattr(source, "state", None) is not None  # a source reading from S3
    ]
    if not states:
        return []
    family = layer_families(states)

    def read() -> Iterator[Metric]:
        up = family(
            "tractcast_artifact_store_up",
            "1 when S3 answered this process's last request (0: it serves from its cache).",
        )
        for name, state in states:
            if state.up is not None:
                up.add_metric(layer_label(name), 1 if state.up else 0)
        if up.samples:
            yield up

    return [StateCollector("artifact_store", read)]


def layer_families(layers: Named[Any]) -> Callable[..., GaugeMetricFamily]:
    """A maker of gauge families whose first label is `layer` when the layers are named."""
    named = any(name is not None for name, _ in layers)

    def family(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            name, documentation, labels=["layer", *labels] if named else [*labels]
        )

    return family


def layer_label(name: str | None) -> list[str]:
    """The `layer` label's value of a sample, when the layer is named."""
    return [] if name is None else [name]


def age_seconds(created_at: str) -> float | None:
    """Seconds since an ISO 8601 time (UTC when it names no zone); None when unreadable."""
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - created).total_seconds())
