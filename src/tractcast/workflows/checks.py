"""What triggers a retrain, and the check the scheduler runs to find out.

Triggers, most specific first: `live_error` (the champion's live WAPE is above k x its
validation WAPE), `drift` (recent inputs moved away from the champion's training window),
`new_data` (a release no retrain has used yet) and `schedule` (the cron schedule, skipped when
the newest retrain already used the newest data with the same code: it would train the same
model again). Every data-driven trigger needs a release no retrain has used: the same data and
code give the same candidates, so a retrain on them would change nothing.

One check enqueues at most one retrain, named after its most specific trigger; before that, a
just-promoted champion that does worse than its predecessor on the same forecasts is rolled
back. Each check is appended to `<store>/monitoring/checks.jsonl`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from tractcast.data.watch import DataWatcher, Release
from tractcast.errors import DataRejected, TractcastError
from tractcast.locks import FileLock
from tractcast.monitoring.drift import DriftCheck, check_drift
from tractcast.monitoring.live_error import (
    LiveError,
    live_error,
    observed_actuals,
    scored_points,
    version_bundles,
)
from tractcast.registry.registry import Registry
from tractcast.registry.store import RegistryReader
from tractcast.settings import Settings
from tractcast.workflows.candidates import series_arrays
from tractcast.workflows.registration import git_commit
from tractcast.workflows.releases import watcher_for
from tractcast.workflows.rollback import check_rollback

if TYPE_CHECKING:
    from tractcast.data.ingest import IngestResult

TRIGGERS = ("live_error", "drift", "new_data", "schedule")  # most specific first
LOG_FILE = "checks.jsonl"
STATE_FILE = "state.json"

Enqueue = Callable[[Settings, str], dict[str, Any]]


@dataclass(frozen=True)
class Fired:
    """A trigger that fired, and why."""

    trigger: str
    reason: str


@dataclass(frozen=True)
class Signals:
    """What one check found out; `decide_triggers` turns it into triggers."""

    scheduled: bool  # the cron schedule is due
    data_version: str | None  # the newest usable release
    trained: bool  # some retrain already used that data version
    up_to_date: bool  # the newest retrain used that data version with this code
    drift: DriftCheck | None = None
    live: LiveError | None = None
    validation_wape: float | None = None  # the champion's backtest WAPE


def decide_triggers(signals: Signals, *, live_error_factor: float, min_days: int) -> list[Fired]:
    """The triggers that fire, most specific first (empty: no retrain)."""
    fired: list[Fired] = []
    fresh = signals.data_version is not None and not signals.trained
    live, bar = signals.live, signals.validation_wape
    if (
        fresh
        and live is not None
        and live.wape is not None
        and live.days >= min_days
        and bar is not None
        and bar > 0
        and live.wape > live_error_factor * bar
    ):
        fired.append(
            Fired(
                "live_error",
                f"live WAPE {live.wape:.3f} of {live.version} over {live.days} days "
                f"({live.start} to {live.end}) is above {live_error_factor:g} x its "
                f"validation WAPE {bar:.3f}",
            )
        )
    drift = signals.drift
    if fresh and drift is not None and drift.drifted:
        fired.append(
            Fired(
                "drift",
                f"PSI {drift.psi:.3f} (KS {drift.ks:.3f}) of log1p daily new cases in the days "
                f"to {drift.recent_end} against the training window to {drift.reference_end} "
                f"is above {drift.threshold:g}",
            )
        )
    if fresh:
        fired.append(Fired("new_data", f"data version {signals.data_version} is new"))
    if signals.scheduled and signals.data_version is not None and not signals.up_to_date:
        fired.append(Fired("schedule", "the retrain schedule is due"))
    return fired


def run_checks(
    settings: Settings, now: datetime, enqueue: Enqueue, *, scheduled: bool = False
) -> dict[str, Any]:
    """Check the source, drift, live error and the just-promoted champion; maybe retrain.

    `now` is when the check runs (the scheduler's clock). Returns what was found and done,
    as appended to the check log.
    """
    registry = Registry.open(settings)
    try:
        with _locked(registry):
            return _check(settings, registry, now, enqueue, scheduled)
    finally:
        registry.close()


def _check(
    settings: Settings,
    registry: Registry,
    now: datetime,
    enqueue: Enqueue,
    scheduled: bool,
) -> dict[str, Any]:
    """One check, under the store's check lock (see run_checks)."""
    report: dict[str, Any] = {"at": now.isoformat(timespec="seconds"), "scheduled": scheduled}
    watcher = watcher_for(settings)
    release, ingested, problems = newest_data(watcher, settings)
    registry.record_data_events(
        watcher,
        ingested.report if ingested else None,
        ingested.data_version if ingested else None,
        "data_check",
    )
    if problems:
        report["problems"] = problems
    versions = registry.list_versions()
    champion = registry.serving_version()
    data_version = ingested.data_version if ingested else None
    if data_version is None and release is not None:
        data_version = release.data_version
    trained = data_version is not None and data_version in {v.data_version for v in versions}
    key = {"data_version": data_version, "champion": champion, "trained": trained}
    report.update(key)
    if not scheduled and trained and _read_state(registry).get("last") == key:
        return _record(registry, key, {**report, "unchanged": True, "fired": []})
    if release is not None and ingested is None:
        ingested = ingest_release(watcher, release, settings)[1]
    if ingested is not None and champion is not None:
        report["rollback"] = check_rollback(registry, champion, ingested, settings)
        champion = registry.serving_version()
        report["champion"] = key["champion"] = champion
    signals = Signals(
        scheduled=scheduled,
        data_version=data_version,
        trained=trained,
        up_to_date=_up_to_date(versions, data_version),
        **(champion_signals(registry, champion, ingested, settings) if ingested else {}),
    )
    fired = decide_triggers(
        signals,
        live_error_factor=settings.live_error_factor,
        min_days=settings.rollback_days,
    )
    report.update(_signals_report(signals))
    report["fired"] = [asdict(f) for f in fired]
    if fired:
        report["retrain"] = enqueue(settings, fired[0].trigger)
    return _record(registry, key, report)


def newest_data(
    watcher: DataWatcher, settings: Settings
) -> tuple[Release | None, IngestResult | None, list[str]]:
    """The newest usable release (ingested if it is new) and what went wrong on the way."""
    problems: list[str] = []
    try:
        new = watcher.check()
    except TractcastError as exc:  # the portal is down: the last good release stays
        problems.append(exc.message)
        new = None
    if new is not None:
        try:
            release, ingested = ingest_release(watcher, new, settings)
            return release, ingested, problems
        except DataRejected as exc:
            problems.append(f"release {new.data_version} refused: {exc.message}")
    return watcher.latest_good(), None, problems


def ingest_release(
    watcher: DataWatcher, release: Release, settings: Settings
) -> tuple[Release, IngestResult]:
    """Ingest a release; one that ingestion refuses is marked rejected, never used again, and
    one inferred differently from the pinned release is held for an admin (watch.py)."""
    from tractcast.data.demo import resolve_inputs
    from tractcast.data.watch import ingest_release as ingest_guarded
    from tractcast.geo.index import TractIndex

    _, tracts = resolve_inputs(settings)
    index = TractIndex.from_file(tracts, id_field=settings.tract_id_field)
    return release, ingest_guarded(watcher, release, index, settings)


def champion_signals(
    registry: Registry, champion: str | None, ingested: IngestResult, settings: Settings
) -> dict[str, Any]:
    """Drift of the newest inputs from the champion's training window, and its live error."""
    if champion is None:
        return {}
    found = registry.get_version(champion)
    arrays = series_arrays(ingested)
    reference = found.manifest.get("drift_reference")
    drift = None
    if reference:
        drift = check_drift(
            reference, arrays.history, arrays.observed, arrays.dates, settings.drift_threshold
        )
    points = scored_points(
        version_bundles(registry.reader, champion), observed_actuals(ingested.series)
    )
    wape = found.metrics.get("wape")
    return {
        "drift": drift,
        "live": live_error(champion, points, settings.rollback_days),
        "validation_wape": float(wape) if isinstance(wape, int | float) else None,
    }


def read_checks(settings: Settings, limit: int | None = 100) -> list[dict[str, Any]]:
    """The check log, newest first."""
    path = RegistryReader(settings.store).checks_dir() / LOG_FILE
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    entries = [json.loads(line) for line in reversed(lines) if line.strip()]
    return entries if limit is None else entries[:limit]


def _up_to_date(versions: list[Any], data_version: str | None) -> bool:
    if not versions or data_version is None:
        return False
    newest = versions[-1]
    return newest.data_version == data_version and newest.manifest.get("git_commit") == git_commit()


def _signals_report(signals: Signals) -> dict[str, Any]:
    return {
        "up_to_date": signals.up_to_date,
        "drift": signals.drift.to_dict() if signals.drift else None,
        "live_error": signals.live.to_dict() if signals.live else None,
        "validation_wape": signals.validation_wape,
    }


def _record(registry: Registry, key: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """Append the check to the log and remember what it saw (both atomic enough to crash)."""
    directory = registry.reader.checks_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOG_FILE, "a") as log:
        log.write(json.dumps(_plain(report), sort_keys=True) + "\n")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".state-")
    with os.fdopen(handle, "w") as stream:
        json.dump({"last": key, "at": report["at"]}, stream)
    os.replace(temporary, directory / STATE_FILE)
    return report


def _read_state(registry: Registry) -> dict[str, Any]:
    path = registry.reader.checks_dir() / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@contextmanager
def _locked(registry: Registry) -> Iterator[None]:
    """One check at a time per store (the scheduled retrain and the daily check may overlap)."""
    directory = registry.reader.checks_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(directory / ".lock"):
        yield
