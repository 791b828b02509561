"""One retrain, end to end: ingest, backtest, train, register, bundle, gate, promote or reject.

The CLI's `train`, `make up`'s first start and the retrainer's Celery task all call `retrain`.

Every candidate family (the LSTM, the ensemble of the LSTM and the baselines, and the three
baselines) is backtested on the same recent origins, fitted once more on all the data, and
registered as a version with its metrics and a bundle. The candidate with the best robust skill
goes to the promotion gate. The champion serving now is re-evaluated on the same origins by
refitting its family with its saved hyperparameters on the data before each origin (its saved
model saw some of those days, so scoring it there would flatter it); when those hyperparameters
equal this run's candidate of the same family, the candidate's scores are reused, since the same
data and configuration give the same scores; and when that candidate is the one put to the gate
(a refresh), it is tested against the champion's saved fit on the origins after the champion's
data ended instead (tractcast.evaluation.gate). Fits are shared (tractcast.models.base.fit_shared):
the ensemble's members at an origin are the members' own candidates fitted there, and the final
fits on all the data are made once. The gate decides before anything is registered, so the
candidate's metrics.json holds the paired test (decision, effect, interval, p-value), and MLflow
logs it with the other metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tractcast import progress
from tractcast.errors import Conflict
from tractcast.evaluation.backtest import run_backtest
from tractcast.evaluation.gate import GateDecision
from tractcast.jsonsafe import json_safe
from tractcast.locks import FileLock
from tractcast.registry.registry import Registry
from tractcast.registry.store import RegistryReader
from tractcast.settings import Settings
from tractcast.workflows.candidates import (
    HEADLINE,
    backtest_origins,
    candidate_forecasters,
    fitting_candidates,
    iso_day,
    load_inputs,
    series_arrays,
)
from tractcast.workflows.promotion import apply_decision, evaluate_champion, gate
from tractcast.workflows.registration import register_candidate, run_manifest, version_metrics
from tractcast.workflows.releases import watcher_for


@dataclass(frozen=True)
class RetrainOutcome:
    """What one retrain did: the versions it registered and what the gate decided, and why."""

    promoted: str | None  # the version this run made champion, or None
    champion: str | None  # the version serving after the run
    candidate: str  # the version put to the gate: the best-scoring candidate of the run
    reason: str
    versions: dict[str, str]  # family -> version registered by this run
    data_version: str
    bundle_id: str | None  # the bundle serving after the run
    origins: list[str]
    metrics: dict[str, dict[str, float | None]]  # family -> backtest headline metrics
    champion_metrics: dict[str, float | None] | None = None  # the old champion, same origins
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def retrain_lock(store: RegistryReader) -> Iterator[None]:
    """Only one retrain per store at a time; a second one is refused, not queued."""
    path = store.retrain_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    if not lock.acquire(blocking=False):
        raise Conflict("a retrain is already running")
    try:
        yield
    finally:
        lock.release()


def retrain(settings: Settings, trigger: str = "manual") -> RetrainOutcome:
    """Backtest and register every candidate on the newest data; promote only past the gate."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    with retrain_lock(RegistryReader(settings.store)):
        registry = Registry.open(settings)
        registry.restore_from_mirror()  # a host without the shared store starts where others are
        progress.begin("ingest", 0, settings.data_source or "the demo data")
        index, ingested = load_inputs(settings)
        registry.record_data_events(
            watcher_for(settings), ingested.report, ingested.data_version, trigger
        )
        arrays = series_arrays(ingested)
        timings["ingest"] = _lap(started, timings)
        candidates = fitting_candidates(
            candidate_forecasters(settings, arrays.first_weekday), arrays.history.shape[1], settings
        )
        backtest = run_backtest(
            arrays.history,
            candidates,
            backtest_origins(arrays, candidates, settings),
            horizon=settings.horizon,
            mask=arrays.observed,
        )
        timings["backtest"] = _lap(started, timings)
        champion = registry.serving_version()
        progress.begin("gate", 0, f"candidates against champion {champion or '(none yet)'}")
        champion_scores, how = (None, "")
        if champion is not None:
            champion_scores, how = evaluate_champion(
                registry, champion, candidates, backtest, arrays, settings
            )
        timings["champion"] = _lap(started, timings)
        chosen = gate(
            candidates, backtest, champion, champion_scores, how, settings,
            registry, arrays, ingested.data_version,
        )  # fmt: skip
        manifest = run_manifest(index, ingested, arrays, trigger)
        progress.begin("final fit and bundles", len(candidates), "on all the data")
        versions = {
            family: register_candidate(
                registry,
                prototype,
                arrays,
                ingested,
                version_metrics(
                    backtest, family, arrays.dates, settings.horizon,
                    chosen if family == chosen.candidate else None,
                ),
                manifest,
                trigger,
                backtest.last_fits.get(family),
            ).version
            for family, prototype in candidates.items()
        }  # fmt: skip
        timings["final_fit"] = _lap(started, timings)
        decision = GateDecision(
            chosen.promote, versions[chosen.candidate], champion, chosen.reason, chosen.test
        )
        apply_decision(registry, decision, arrays, ingested, trigger)
        timings["gate"] = _lap(started, timings)
        # MLflow and the S3 mirror log their outages and catch up later; neither fails a run
        promoted = decision.candidate if decision.promote else None
        registry.track(versions.values(), promoted)
        registry.mirror()
    return RetrainOutcome(
        promoted=decision.candidate if decision.promote else None,
        champion=registry.serving_version(),
        candidate=decision.candidate,
        reason=decision.reason,
        versions=versions,
        data_version=ingested.data_version,
        bundle_id=registry.current_bundle_id(),
        origins=[iso_day(arrays.dates, origin) for origin in backtest.origins],
        metrics={family: _headline(backtest.scores[family]) for family in candidates},
        champion_metrics=None if champion_scores is None else _headline(champion_scores),
        seconds=round(time.monotonic() - started, 1),
        timings=timings,
    )


def _lap(started: float, timings: dict[str, float]) -> float:
    """Seconds since the last recorded stage ended (stages are recorded in order)."""
    elapsed = time.monotonic() - started
    return round(max(0.0, elapsed - sum(timings.values())), 1)


def _headline(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The overall metrics, rounded; None where nothing was scored (strict JSON has no NaN)."""
    return {k: json_safe(float(np.round(metrics[k], 4))) for k in HEADLINE if k in metrics}
