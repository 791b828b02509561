"""Which triggers fire, and the check the scheduler runs: new data, drift, live error, rollback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tractcast.monitoring.drift import DriftCheck
from tractcast.monitoring.live_error import LiveError
from tractcast.registry.registry import Registry
from tractcast.workflows.checks import Signals, decide_triggers, read_checks, run_checks

from .conftest import MakeVersion, Portal, Retrains, weekly_mean

NOW = datetime(2023, 5, 2, 4, tzinfo=UTC)
DRIFTED = DriftCheck(0.9, 0.6, 0.25, "2023-03-31", "2023-04-30", 448)
CALM = DriftCheck(0.02, 0.05, 0.25, "2023-03-31", "2023-04-30", 448)
BAD_LIVE = LiveError("v0001-lstm", 14, 224, "2023-04-17", "2023-04-30", 40.0, 0.9)


def fired(signals: Signals, factor: float = 1.5, min_days: int = 14) -> list[str]:
    found = decide_triggers(signals, live_error_factor=factor, min_days=min_days)
    return [f.trigger for f in found]


def fresh(**changes: object) -> Signals:
    base = {"scheduled": False, "data_version": "d2", "trained": False, "up_to_date": False}
    return Signals(**{**base, **changes})  # type: ignore[arg-type]


def promote_two(store, metadata, make_version: MakeVersion, overshoot: bool) -> tuple[str, str]:
    """A first champion, then a successor that passed the gate: forecasting five times the
    weekly mean when `overshoot`, else as good as the first. Returns both version ids."""
    first = make_version(wape=10.0)
    Registry(store, metadata).promote(first, reason="first")
    forecast = (lambda history: 5 * weekly_mean(history)) if overshoot else weekly_mean
    second = make_version(family="lstm", forecast=forecast, wape=10.0)
    Registry(store, metadata).promote(second, reason="passed the gate")
    return first, second


def test_new_data_alone_fires_new_data() -> None:
    assert fired(fresh(drift=CALM)) == ["new_data"]


def test_the_most_specific_trigger_comes_first() -> None:
    signals = fresh(drift=DRIFTED, live=BAD_LIVE, validation_wape=0.3, scheduled=True)
    assert fired(signals) == ["live_error", "drift", "new_data", "schedule"]


def test_live_error_needs_k_times_the_validation_error_over_enough_days() -> None:
    assert fired(fresh(live=BAD_LIVE, validation_wape=0.3)) == ["live_error", "new_data"]
    assert fired(fresh(live=BAD_LIVE, validation_wape=0.3), factor=3.5) == ["new_data"]
    assert fired(fresh(live=BAD_LIVE, validation_wape=0.3), min_days=28) == ["new_data"]
    assert fired(fresh(live=BAD_LIVE, validation_wape=None)) == ["new_data"]


def test_data_a_retrain_already_used_fires_nothing_however_bad_it_looks() -> None:
    signals = fresh(trained=True, drift=DRIFTED, live=BAD_LIVE, validation_wape=0.1)
    assert fired(signals) == []


def test_the_schedule_fires_unless_the_newest_retrain_used_this_data_and_code() -> None:
    assert fired(fresh(trained=True, scheduled=True)) == ["schedule"]
    assert fired(fresh(trained=True, scheduled=True, up_to_date=True)) == []


def test_without_any_usable_release_nothing_fires() -> None:
    assert fired(fresh(data_version=None, scheduled=True)) == []


def test_the_reasons_give_the_numbers() -> None:
    found = decide_triggers(
        fresh(drift=DRIFTED, live=BAD_LIVE, validation_wape=0.3),
        live_error_factor=1.5,
        min_days=14,
    )
    assert "live WAPE 0.900" in found[0].reason and "validation WAPE 0.300" in found[0].reason
    assert "PSI 0.900" in found[1].reason and "above 0.25" in found[1].reason


# ---- run_checks over a real watcher and store (no training: versions are made by hand) ----


def test_a_first_release_enqueues_one_retrain_for_new_data(settings, portal: Portal, retrains):
    portal.release("2023-03-31")
    report = run_checks(settings, NOW, retrains)
    assert retrains.triggers == ["new_data"]
    assert report["retrain"] == {"status": "queued", "trigger": "new_data"}
    assert report["champion"] is None and report["trained"] is False
    assert read_checks(settings)[0]["fired"][0]["trigger"] == "new_data"


def test_nothing_new_since_the_retrain_fires_nothing_and_is_not_reingested(
    settings, portal: Portal, retrains: Retrains, make_version: MakeVersion
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    registry.promote(make_version(), reason="first")
    first = run_checks(settings, NOW, retrains)
    again = run_checks(settings, NOW, retrains)
    assert retrains.triggers == []
    assert first["fired"] == [] and first["trained"] is True
    assert again["unchanged"] is True
    assert [entry["at"] for entry in read_checks(settings)] == [NOW.isoformat()] * 2


def test_the_schedule_skips_a_retrain_that_would_train_the_same_model(
    settings, portal: Portal, retrains: Retrains, make_version: MakeVersion
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    registry.promote(make_version(), reason="first")
    report = run_checks(settings, NOW, retrains, scheduled=True)
    assert retrains.triggers == [] and report["up_to_date"] is True
    portal.release("2023-04-30")
    report = run_checks(settings, NOW, retrains, scheduled=True)
    named = [f["trigger"] for f in report["fired"]]
    assert named[-2:] == ["new_data", "schedule"]
    assert retrains.triggers == named[:1]  # one retrain, named after the most specific


def test_inputs_unlike_the_champions_training_window_name_the_retrain_drift(
    settings, portal: Portal, retrains: Retrains, make_version: MakeVersion
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    # a champion whose training window saw a hundredth of today's cases
    registry.promote(make_version(reference_scale=0.01), reason="first")
    portal.release("2023-04-30")
    report = run_checks(settings, NOW, retrains)
    assert retrains.triggers == ["drift"]
    assert report["drift"]["drifted"] and report["drift"]["psi"] > 0.25
    assert [f["trigger"] for f in report["fired"]] == ["drift", "new_data"]


def test_a_champion_far_off_its_validation_error_names_the_retrain_live_error(
    settings, portal: Portal, retrains: Retrains, make_version: MakeVersion
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    wild = make_version(forecast=lambda history: 4 * history[:, -14:], wape=0.2)
    registry.promote(wild, reason="first")
    portal.release("2023-04-30")
    report = run_checks(settings, NOW, retrains)
    assert retrains.triggers == ["live_error"]
    live = report["live_error"]
    assert live["version"] == wild and live["days"] == 14 and live["wape"] > 1.5 * 0.2
    assert (live["start"], live["end"]) == ("2023-04-01", "2023-04-14")


def test_a_just_promoted_champion_worse_than_its_predecessor_is_rolled_back_and_says_why(
    settings, portal: Portal, retrains: Retrains, make_version: MakeVersion
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    good, bad = promote_two(store, metadata, make_version, overshoot=True)
    portal.release("2023-04-30")

    report = run_checks(settings, NOW, retrains)

    assert store.serving_version() == good
    event = metadata.list_events(limit=1)[0]
    assert (event.kind, event.version, event.from_version) == ("rolled_back", good, bad)
    assert event.trigger == "live_error"
    assert (
        "exceeded predecessor" in event.reason and "by more than 10% over 14 days" in event.reason
    )
    rollback = report["rollback"]
    assert rollback["champion_mae"] > 1.1 * rollback["predecessor_mae"]
    assert rollback["rolled_back"]["id"] == event.id
    assert report["champion"] == good
    # the new data still gets its retrain, judged against the champion restored
    assert len(retrains.triggers) == 1 and retrains.triggers[0] in {"drift", "new_data"}


def test_a_champion_as_good_as_its_predecessor_stays(
    settings, portal: Portal, retrains: Retrains, make_version: MakeVersion
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    first, second = promote_two(store, metadata, make_version, overshoot=False)
    portal.release("2023-04-30")
    report = run_checks(settings, NOW, retrains)
    assert store.serving_version() == second
    assert report["rollback"]["rolled_back"] is None
    assert report["rollback"]["champion_mae"] == pytest.approx(
        report["rollback"]["predecessor_mae"]
    )


def test_too_few_days_of_actuals_is_no_verdict_yet(
    settings, portal: Portal, retrains: Retrains, make_version: MakeVersion
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    good, bad = promote_two(store, metadata, make_version, overshoot=True)
    portal.release("2023-04-06")  # six days of actuals
    report = run_checks(settings, NOW, retrains)
    assert store.serving_version() == bad
    assert report["rollback"]["days"] == 6 and report["rollback"]["rolled_back"] is None


def test_a_champion_restored_by_a_rollback_is_not_judged_again(
    settings, portal: Portal, retrains: Retrains, make_version: MakeVersion
):
    portal.release("2023-03-31")
    registry = Registry.open(settings)
    store, metadata = registry.store, registry.metadata
    good, bad = promote_two(store, metadata, make_version, overshoot=True)
    registry.rollback(reason="an admin had doubts")
    portal.release("2023-04-30")
    report = run_checks(settings, NOW, retrains)
    assert report["rollback"] is None and store.serving_version() == good
    assert [e.kind for e in metadata.list_events(limit=2)] == ["rolled_back", "promoted"]
