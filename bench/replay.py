"""Replay: the Italy data released month by month through the real watcher, clock accelerated.

A local file stands in for the portal: it first holds the Italy provinces data up to `--start`,
and on day `--release-day` of each following month it grows by the month before (so the data
of January is published on February 2nd). A simulated clock walks day by day; whenever one of
the scheduler's cron jobs is due (the monthly retrain schedule, the daily check) the same
`run_checks` the scheduler calls runs with that simulated time, and a retrain it enqueues runs
at once (the real pipeline: backtest, gate, register, bundle, promote or reject).

At the end it prints the counts of retrains (by trigger), promotions, rejections and automated
rollbacks, and for each release the forecast served after it (scored on the 14 days that
followed, against the newest data) next to the first champion frozen: the same model
forecasting from each release's data, never retrained.

    .venv/bin/python -m bench.replay [--start 2021-06-30] [--months 24] [--epochs N] [--origins N]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from apscheduler.triggers.cron import CronTrigger

from bench import run_showing_progress
from tractcast.data.ingest import ingest_options, ingest_source
from tractcast.errors import TractcastError
from tractcast.geo.index import TractIndex
from tractcast.models.base import load_forecaster
from tractcast.monitoring.live_error import live_error, observed_actuals, scored_points
from tractcast.registry import Registry
from tractcast.serving.build import build_bundle
from tractcast.settings import Settings
from tractcast.workflows.candidates import series_arrays
from tractcast.workflows.checks import run_checks
from tractcast.workflows.releases import watcher_for
from tractcast.workflows.retrain import retrain

ROOT = Path(__file__).resolve().parents[1]
ITALY = ROOT.parent / "shared" / "data" / "italy"
DAYS = 14


class Portal:
    """A growing local copy of the Italy file: `publish(last_day)` rewrites it up to that day."""

    def __init__(self, path: Path) -> None:
        with gzip.open(ITALY / "cases_provinces.csv.gz", "rt", encoding="utf-8") as source:
            self.header = next(source)
            self.lines = list(source)
        self.path = path
        self.published = ""

    def publish(self, last_day: str) -> None:
        temporary = self.path.with_suffix(".tmp")
        with gzip.open(temporary, "wt", encoding="utf-8", compresslevel=1) as out:
            out.write(self.header)
            out.writelines(line for line in self.lines if line[:10] <= last_day)
        os.replace(temporary, self.path)
        self.published = last_day


def month_end(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def due_times(
    triggers: dict[str, CronTrigger], start: datetime, end: datetime
) -> list[tuple[datetime, str]]:
    """Every fire time of every job in [start, end), in order."""
    fires = []
    for name, trigger in triggers.items():
        previous = None
        moment = trigger.get_next_fire_time(None, start)
        while moment is not None and moment < end:
            fires.append((moment, name))
            previous = moment
            moment = trigger.get_next_fire_time(previous, moment + timedelta(seconds=1))
    return sorted(fires)


@dataclasses.dataclass
class Replay:
    settings: Settings
    portal: Portal
    retrains: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    served: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # after each release
    checks: int = 0
    lines: list[str] = dataclasses.field(default_factory=list)  # said by the check's retrain
    scheduled: int = 0
    retrain_seconds: float = 0.0

    def enqueue(self, settings: Settings, trigger: str) -> dict[str, Any]:
        """What the worker would do with the task, at once."""
        began = time.monotonic()
        outcome = retrain(settings, trigger=trigger)
        self.retrain_seconds += time.monotonic() - began
        self.retrains.append(
            {
                "trigger": trigger,
                "promoted": outcome.promoted,
                "candidate": outcome.candidate,
                "champion": outcome.champion,
                "seconds": outcome.seconds,
                "data_version": outcome.data_version,
            }
        )
        verdict = f"promoted {outcome.promoted}" if outcome.promoted else "rejected"
        self.lines.append(
            f"    retrain ({trigger}) on data to {self.portal.published}: {verdict}; "
            f"{outcome.champion} serves ({outcome.seconds:.0f} s)"
        )
        return {"status": "done", "trigger": trigger}

    def check(self, now: datetime, scheduled: bool) -> None:
        self.checks += 1
        self.scheduled += scheduled
        report = run_checks(self.settings, now, self.enqueue, scheduled=scheduled)
        rollback = (report.get("rollback") or {}).get("rolled_back")
        if rollback:
            print(f"    rolled back to {rollback['version']}: {rollback['reason']}")
        for line in self.lines:
            print(line, flush=True)
        self.lines.clear()


def run(args: argparse.Namespace, base: Path) -> Replay:
    portal_dir = base / "portal"
    portal_dir.mkdir()
    portal = Portal(portal_dir / "italy.csv.gz")
    settings = Settings(
        data_source=str(portal.path),
        tracts=str(ITALY / "provinces.geojson"),
        store=base / "store",
        demo_dir=base / "demo",
        run_dir=base / "run",
        rollback_days=DAYS,
    )
    # the gate as configured by default unless told otherwise
    if args.epochs:
        settings = settings.with_(epochs=args.epochs)
    if args.origins:
        settings = settings.with_(backtest_origins=args.origins)
    replay = Replay(settings, portal)
    start = date.fromisoformat(args.start)
    releases = [start]
    for _ in range(args.months):
        releases.append(month_end(releases[-1] + timedelta(days=1)))
    publish_on = {
        (last + timedelta(days=args.release_day)).isoformat(): last.isoformat() for last in releases
    }
    jobs = {
        "schedule": CronTrigger.from_crontab(settings.schedule, timezone="UTC"),
        "check": CronTrigger.from_crontab(settings.data_check, timezone="UTC"),
    }
    day = start + timedelta(days=args.release_day)
    end = releases[-1] + timedelta(days=args.release_day + 1)
    while day < end:
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if day.isoformat() in publish_on:
            portal.publish(publish_on[day.isoformat()])
            print(f"{day}: the portal publishes the data to {portal.published}", flush=True)
        for moment, job in due_times(jobs, midnight, midnight + timedelta(days=1)):
            replay.check(moment, scheduled=job == "schedule")
        if day.isoformat() in publish_on:
            served = Registry.open(settings).current_bundle_id()
            replay.served.append({"release": portal.published, "bundle": served})
        day += timedelta(days=1)
    return replay


def frozen_forecasts(settings: Settings, version: str) -> list[Any]:
    """The first champion, never retrained, forecasting from every release's data."""
    found = Registry.open(settings).get_version(version)
    assert found.path is not None
    forecaster = load_forecaster(found.path, found.family)
    index = TractIndex.from_file(settings.tracts or "", id_field=settings.tract_id_field)
    watcher = watcher_for(settings)
    bundles = []
    for data_version, info in sorted(
        watcher.read_state().get("releases", {}).items(), key=lambda kv: kv[1]["fetched_at"]
    ):
        release = watcher.release(data_version, info)
        ingested = ingest_source(release.path, index, **ingest_options(settings))
        arrays = series_arrays(ingested)
        if hasattr(forecaster, "first_weekday"):
            forecaster.first_weekday = arrays.first_weekday
        bundles.append(
            build_bundle(
                ingested.series,
                arrays.tract_ids,
                forecaster.predict(arrays.history),
                f"{version}",
                ingested.data_version,
            )
        )
    return bundles


def score(bundle: Any, actuals: pd.Series) -> tuple[float | None, float | None]:
    error = live_error(bundle.model_version, scored_points([bundle], actuals), DAYS)
    return (error.mae, error.wape) if error.days == DAYS else (None, None)


def report(replay: Replay, seconds: float) -> None:
    settings = replay.settings
    registry = Registry.open(settings)
    events = registry.list_events(limit=None)[::-1]
    kinds = Counter(event.kind for event in events if event.kind != "registered")
    by_trigger = Counter(entry["trigger"] for entry in replay.retrains)
    promoted_by = Counter(e["trigger"] for e in replay.retrains if e["promoted"])
    automated = [e for e in events if e.kind == "rolled_back" and e.trigger == "live_error"]
    print(
        f"\nreplay: {len(replay.served) - 1} monthly releases after the first, "
        f"{replay.checks} scheduler firings ({replay.scheduled} of the monthly schedule), "
        f"{seconds / 60:.1f} min ({replay.retrain_seconds / 60:.1f} min retraining)"
    )
    print(f"retrains: {len(replay.retrains)} by trigger {dict(by_trigger)}")
    print(
        f"promotions: {kinds['promoted']} (by trigger {dict(promoted_by)}), "
        f"rejections: {kinds['rejected']}, automated rollbacks: {len(automated)}"
    )
    for event in automated:
        print(f"  rolled back to {event.version} from {event.from_version}: {event.reason}")

    first = next((e.version for e in events if e.kind == "promoted"), None)
    if first is None:
        return
    newest = watcher_for(settings).latest_good()
    assert newest is not None
    index = TractIndex.from_file(settings.tracts or "", id_field=settings.tract_id_field)
    actuals = observed_actuals(ingest_source(newest.path, index, **ingest_options(settings)).series)
    frozen = {bundle.as_of: bundle for bundle in frozen_forecasts(settings, first)}
    print(
        f"\nforecast error on the {DAYS} days after each release (MAE of daily new cases per "
        f"province; WAPE) - served vs {first} frozen"
    )
    print(f"{'data to':<12}{'served':<22}{'MAE':>9}{'WAPE':>8}   {'frozen MAE':>10}{'WAPE':>8}")
    served_wapes, frozen_wapes = [], []
    for entry in replay.served:
        if entry["bundle"] is None:
            continue
        bundle = registry.bundle(entry["bundle"])
        mae, wape = score(bundle, actuals)
        frozen_mae, frozen_wape = (
            score(frozen[bundle.as_of], actuals) if bundle.as_of in frozen else (None, None)
        )
        if mae is None:
            continue
        served_wapes.append(wape)
        frozen_wapes.append(frozen_wape)
        print(
            f"{entry['release']:<12}{bundle.model_version:<22}{mae:>9.1f}{wape:>8.3f}   "
            f"{_shown(frozen_mae, '.1f'):>10}{_shown(frozen_wape, '.3f'):>8}"
        )
    pairs = [(s, f) for s, f in zip(served_wapes, frozen_wapes, strict=True) if f is not None]
    if pairs:
        served_mean = float(np.mean([s for s, _ in pairs]))
        frozen_mean = float(np.mean([f for _, f in pairs]))
        ratio = served_mean / frozen_mean if frozen_mean else float("nan")
        print(
            f"mean WAPE over {len(pairs)} releases: served {served_mean:.3f}, "
            f"frozen {frozen_mean:.3f}: served / frozen {ratio:.3f} (goal <= 0.95)"
        )
    report_promotions(registry, events, actuals)


def report_promotions(store: Any, events: list[Any], actuals: pd.Series) -> None:
    """Each gate promotion against the champion it replaced, on the forecasts both made from the
    same release (the replaced champion forecasts from that data too), over the days after it."""
    print("\npromotions by the gate: promoted vs replaced champion, same release, same days")
    print(f"{'version':<22}{'replaced':<22}{'as of':<12}{'MAE':>8}{'before':>8}  verdict")
    worse = 0
    for event in events:
        if event.kind != "promoted" or event.from_version is None or event.trigger == "manual":
            continue
        # the release it was promoted on: its first bundle (a champion that serves for months
        # makes one a release after it), and the replaced champion's from the same data
        data_version = store.get_version(event.version).data_version
        try:
            bundle = store.bundle(f"{event.version}@{data_version}")
            before = store.bundle(f"{event.from_version}@{data_version}")
        except TractcastError:
            continue
        mae, _ = score(bundle, actuals)
        old_mae, _ = score(before, actuals)
        if mae is None or old_mae is None:
            continue
        verdict = "worse" if mae > old_mae else "better"
        worse += mae > old_mae
        print(
            f"{event.version:<22}{event.from_version:<22}{bundle.as_of:<12}{mae:>8.1f}"
            f"{old_mae:>8.1f}  {verdict}"
        )
    print(f"promoted models worse than the champion they replaced: {worse} (goal <= 2 of 24)")


def _shown(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", default="2021-06-30", help="last day of the first release")
    parser.add_argument("--months", type=int, default=24, help="monthly releases after it")
    parser.add_argument("--release-day", type=int, default=2, help="day of the month published")
    parser.add_argument("--epochs", type=int, default=None, help="default: the settings' 30")
    parser.add_argument(
        "--origins", type=int, default=None, help="backtest origins per retrain (settings': 8)"
    )
    parser.add_argument("--keep", default=None, help="keep the store in this directory")
    args = parser.parse_args()
    began = time.monotonic()
    if args.keep:
        base = Path(args.keep)
        base.mkdir(parents=True, exist_ok=False)
        replay = run(args, base)
        report(replay, time.monotonic() - began)
        return
    with tempfile.TemporaryDirectory(prefix="tractcast-replay-") as tmp:
        replay = run(args, Path(tmp))
        report(replay, time.monotonic() - began)


if __name__ == "__main__":
    run_showing_progress(main)
