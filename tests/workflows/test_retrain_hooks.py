"""What a retrain leaves for monitoring: the drift reference, the predecessor's forecast, the
trigger on every event, and data that comes through the watcher."""

from __future__ import annotations

from tractcast.evaluation.gate import GateDecision
from tractcast.models.base import make_forecaster
from tractcast.registry import Registry
from tractcast.settings import Settings
from tractcast.workflows.candidates import load_inputs, series_arrays
from tractcast.workflows.promotion import apply_decision, version_bundle
from tractcast.workflows.registration import run_manifest
from tractcast.workflows.releases import watcher_for

from .conftest import Portal


def fitted_version(settings: Settings, family: str) -> str:
    """A real baseline fitted on the newest release and registered with a bundle-free version."""
    registry = Registry.open(settings)
    index, ingested = load_inputs(settings)
    arrays = series_arrays(ingested)
    forecaster = make_forecaster(family, horizon=14)
    forecaster.fit(arrays.history)
    manifest = run_manifest(index, ingested, arrays, "test")
    version = registry.register(family, forecaster.save, metrics={"wape": 0.5}, manifest=manifest)
    return version.version


def test_the_inputs_come_from_the_watchers_newest_release(settings: Settings, portal: Portal):
    portal.release("2023-03-31")
    _, first = load_inputs(settings)
    portal.release("2023-04-30")
    _, second = load_inputs(settings)
    releases = watcher_for(settings).read_state()["releases"]
    assert {first.data_version, second.data_version} == set(releases)
    assert second.series["date"].max().date().isoformat() == "2023-04-30"


def test_every_version_keeps_a_drift_reference_of_its_training_window(
    settings: Settings, portal: Portal
):
    portal.release("2023-03-31")
    index, ingested = load_inputs(settings)
    manifest = run_manifest(index, ingested, series_arrays(ingested), "drift")
    reference = manifest["drift_reference"]
    assert manifest["trigger"] == "drift"
    assert reference["end"] == "2023-03-31" and reference["days"] == 28
    assert len(reference["quantiles"]) == 101 and reference["values"] > 16 * 27


def test_a_promotion_also_forecasts_with_the_champion_it_replaces(
    settings: Settings, portal: Portal
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    old = fitted_version(settings, "persistence")
    new = fitted_version(settings, "seasonal_naive")
    index, ingested = load_inputs(settings)
    arrays = series_arrays(ingested)
    store.add_bundle(version_bundle(registry, old, arrays, ingested))
    Registry(store, metadata).promote(old, reason="first")
    portal.release("2023-04-30")
    index, ingested = load_inputs(settings)
    arrays = series_arrays(ingested)
    store.add_bundle(version_bundle(registry, new, arrays, ingested))

    apply_decision(registry, GateDecision(True, new, old, "better"), arrays, ingested, "drift")

    assert store.current_bundle_id() == f"{new}@{ingested.data_version}"
    assert store.latest_bundle_for(old) == f"{old}@{ingested.data_version}"  # same data as new
    promoted = metadata.list_events(limit=1)[0]
    assert (promoted.kind, promoted.version, promoted.trigger) == ("promoted", new, "drift")
