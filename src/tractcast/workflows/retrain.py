"""One retrain, end to end: ingest, backtest, train, register, bundle, gate, promote or reject.

The CLI's `train`, `make up`'s first start and the retrainer's Celery task all call `retrain`.

Every candidate family (the LSTM, the ensemble of the LSTM and the baselines, and the three
baselines) is backtested on the same recent origins, fitted once more on all the data, and
registered as a version with its metrics and a bundle. The candidate with the best robust skill
goes to the promotion gate. The champion serving now is re-evaluated on the same origins by
refitting its family with its saved hyperparameters on the data before each origin (its saved
model saw some of those days, so scoring it there would flatter it); when those hyperparameters
equal this run's candidate of the same family, the candidate's scores are reused, since the same
data and configuration give the same scores. Fits are shared (tractcast.models.base.fit_shared):
the ensemble's members at an origin are the members' own candidates fitted there, and the final
fits on all the data are made once. The gate decides before anything is registered, so the
candidate's metrics.json holds the paired test (decision, effect, interval, p-value), and MLflow
logs it with the other metrics.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tractcast import progress
from tractcast.data.demo import resolve_inputs
from tractcast.data.ingest import IngestResult
from tractcast.data.series import series_matrix
from tractcast.errors import Conflict, TractcastError
from tractcast.evaluation.backtest import (
    Backtest,
    origins_between,
    recent_origins,
    run_backtest,
)
from tractcast.evaluation.gate import GateDecision, choose_candidate, decide_promotion
from tractcast.evaluation.significance import overlap_lags
from tractcast.geo.index import TractIndex
from tractcast.jsonsafe import json_safe
from tractcast.locks import FileLock
from tractcast.models.base import (
    BASELINE_FAMILIES,
    Forecaster,
    fit_shared,
    forecaster_from_params,
    load_forecaster,
    make_forecaster,
)
from tractcast.monitoring.drift import reference_sample
from tractcast.registry.integrity import verify_version_files
from tractcast.registry.registry import Registry
from tractcast.registry.store import ModelVersion, RegistryReader
from tractcast.serving.build import build_bundle
from tractcast.serving.bundle import Bundle
from tractcast.settings import Settings
from tractcast.workflows.releases import ingest_current_release, watcher_for

MODEL_FAMILY = "lstm"
ENSEMBLE_FAMILY = "ensemble"
HEADLINE = (
    "mae", "rmse", "mse", "mape", "wape", "wis", "relative_mae", "relative_wis",
    "robust_relative_mae", "robust_relative_wis", "coverage", "coverage_50", "coverage_95",
    "coverage_min", "coverage_max",
)  # fmt: skip
REPORT_KEYS = (*HEADLINE, "per_horizon", "per_origin")


@dataclass(frozen=True)
class SeriesArrays:
    """The ingested series as arrays: new cases and which of them were observed (not imputed)."""

    tract_ids: list[str]
    dates: pd.DatetimeIndex
    history: np.ndarray
    observed: np.ndarray

    @property
    def first_weekday(self) -> int:
        return int(self.dates[0].weekday())


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


def load_inputs(settings: Settings) -> tuple[TractIndex, IngestResult]:
    """The tract layer and the newest usable release of the configured (or demo) source.

    The release comes through the watcher: a raw snapshot under its data version, and a
    release that ingestion refuses leaves the last good one in use.
    """
    _, tracts = resolve_inputs(settings)
    index = TractIndex.from_file(tracts, id_field=settings.tract_id_field)
    _, ingested = ingest_current_release(settings, index)
    return index, ingested


def series_arrays(ingested: IngestResult) -> SeriesArrays:
    """New cases per tract and day, and the mask of days that were observed, not imputed."""
    tract_ids, dates, history = series_matrix(ingested.series, value="new_cases")
    _, _, imputed = series_matrix(ingested.series, value="imputed")
    return SeriesArrays(tract_ids, dates, history, ~imputed.astype(bool))


def candidate_forecasters(settings: Settings, first_weekday: int) -> dict[str, Forecaster]:
    """The LSTM, the ensemble and the baselines, unfitted, keyed by family.

    `first_weekday` is the weekday (Monday 0) of the first day of every history they will see.
    The ensemble's members are exactly the other candidates, so their fits are shared.
    """
    lstm = make_forecaster(
        MODEL_FAMILY,
        horizon=settings.horizon,
        lookback=settings.lookback,
        epochs=settings.epochs,
        seed=settings.seed,
        first_weekday=first_weekday,
    )
    candidates: dict[str, Forecaster] = {MODEL_FAMILY: lstm}
    for family in BASELINE_FAMILIES:
        candidates[family] = make_forecaster(family, horizon=settings.horizon)
    members = {family: candidate.params() for family, candidate in candidates.items()}
    candidates[ENSEMBLE_FAMILY] = make_forecaster(
        ENSEMBLE_FAMILY, horizon=settings.horizon, members=members, first_weekday=first_weekday
    )
    return candidates


def fitting_candidates(
    candidates: dict[str, Forecaster], n_days: int, settings: Settings
) -> dict[str, Forecaster]:
    """The candidates that can be backtested on a history this long (at least one origin).

    A short first release leaves out what needs more days before its first origin (the
    ensemble needs the LSTM's days and its own calibration days) rather than failing the run.
    """
    last = n_days - settings.horizon
    last -= last % 7
    kept = {name: c for name, c in candidates.items() if c.min_days <= last}
    return kept or candidates  # none fits: let the backtest say why


def backtest_origins(
    arrays: SeriesArrays, candidates: dict[str, Forecaster], settings: Settings
) -> list[int]:
    """The recent weekly origins every candidate is scored on (as many as the history allows)."""
    n_days = arrays.history.shape[1]
    room = max(c.min_days for c in candidates.values())
    count = max(1, settings.backtest_origins)
    while count > 1 and n_days - settings.horizon - 6 - 7 * (count - 1) < room:
        count -= 1
    return recent_origins(n_days, count, settings.horizon, aligned=True)


def git_commit() -> str:
    """The commit of the code that trained, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


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


def dated_scores(scores: dict[str, Any], dates: pd.DatetimeIndex) -> dict[str, Any]:
    """Backtest scores with each per-origin entry naming its origin as an ISO date."""
    per_origin = [
        {**entry, "origin": iso_day(dates, entry["origin"])} for entry in scores["per_origin"]
    ]
    return {**scores, "per_origin": per_origin}


def iso_day(dates: pd.DatetimeIndex, index: int) -> str:
    return dates[index].date().isoformat()


def register_candidate(
    registry: Registry,
    prototype: Forecaster,
    arrays: SeriesArrays,
    ingested: IngestResult,
    metrics: dict[str, Any],
    manifest: dict[str, Any],
    trigger: str,
    warm: Forecaster | None = None,
) -> ModelVersion:
    """Fit a copy of the prototype on all the data; register it with its metrics and a bundle.

    `warm` is the candidate's fit before the last backtest origin: where the final fit starts
    from, for a model that can (a warm start).
    """
    progress.advance("final fit and bundles", prototype.family)
    forecaster = fit_shared(prototype, arrays.history, warm=warm)
    version = registry.register(
        forecaster.family,
        forecaster.save,
        metrics=metrics,
        manifest={**manifest, "hyperparameters": forecaster.params(), **model_notes(forecaster)},
        trigger=trigger,
    )
    bundle = build_bundle(
        ingested.series,
        arrays.tract_ids,
        forecaster.predict(arrays.history),
        version.version,
        ingested.data_version,
    )
    registry.add_bundle(bundle)
    return version


def model_notes(forecaster: Forecaster) -> dict[str, Any]:
    """What a fitted model says about itself for its manifest (an ensemble's weights)."""
    table = getattr(forecaster, "weights_table", None)
    return {"ensemble_weights": table()} if callable(table) else {}


def evaluate_champion(
    registry: Registry,
    champion: str,
    candidates: dict[str, Forecaster],
    backtest: Backtest,
    arrays: SeriesArrays,
    settings: Settings,
) -> tuple[dict[str, Any] | None, str]:
    """The champion's scores on the backtest's origins (None if it cannot be refitted), and how."""
    found = registry.get_version(champion)
    try:
        prototype = forecaster_from_params(
            found.family,
            dict(found.manifest.get("hyperparameters", {})),
            horizon=settings.horizon,
            first_weekday=arrays.first_weekday,
        )
    except (TractcastError, TypeError, ValueError) as exc:
        return None, f"champion {champion} could not be rebuilt for comparison ({exc})"
    same = candidates.get(found.family)
    if same is not None and same.params() == prototype.params():
        return backtest.scores[found.family], "same family and hyperparameters as this run's"
    try:
        again = run_backtest(
            arrays.history,
            {champion: prototype},
            backtest.origins,
            horizon=settings.horizon,
            mask=arrays.observed,
        )
    except TractcastError as exc:
        return None, f"champion {champion} could not be refitted for comparison ({exc.message})"
    return again.scores[champion], "refitted with its saved hyperparameters"


def refresh_champion(
    registry: Registry, champion: str, arrays: SeriesArrays, ingested: IngestResult
) -> str:
    """Serve the champion's forecast from the newest data (a new bundle, same model)."""
    return registry.refresh_serving_bundle(version_bundle(registry, champion, arrays, ingested))


def version_bundle(
    registry: Registry, version: str, arrays: SeriesArrays, ingested: IngestResult
) -> Bundle:
    """A stored version's forecast from the newest data, as a bundle (nothing serves it yet)."""
    found = registry.get_version(version)
    assert found.path is not None
    verify_version_files(found)  # a corrupted .h5 is refused here, before Keras reads it
    forecaster = load_forecaster(found.path, found.family)
    if hasattr(forecaster, "first_weekday"):
        forecaster.first_weekday = arrays.first_weekday  # a property of the history, not the model
    return build_bundle(
        ingested.series,
        arrays.tract_ids,
        forecaster.predict(arrays.history),
        version,
        ingested.data_version,
    )


def retrain(settings: Settings, trigger: str = "manual") -> RetrainOutcome:
    """Backtest and register every candidate on the newest data; promote only past the gate."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    with retrain_lock(RegistryReader(settings.store)):
        registry = Registry.open(settings)
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
            registry, ingested.data_version,
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


def run_manifest(
    index: TractIndex, ingested: IngestResult, arrays: SeriesArrays, trigger: str
) -> dict[str, Any]:
    """What every version of one retrain records about where it came from."""
    return {
        "git_commit": git_commit(),
        "data_version": ingested.data_version,
        "trigger": trigger,
        "tracts": len(arrays.tract_ids),
        "tract_id_field": index.id_field,
        "days": int(arrays.history.shape[1]),
        "ingest": _ingest_summary(ingested.report),
        # what the inputs looked like, for the drift check (tractcast.monitoring.drift)
        "drift_reference": reference_sample(arrays.history, arrays.observed, arrays.dates),
    }


def version_metrics(
    backtest: Backtest,
    family: str,
    dates: pd.DatetimeIndex,
    horizon: int,
    decision: GateDecision | None = None,
) -> dict[str, Any]:
    """metrics.json of a version: its backtest scores, overall, per horizon and per origin.

    The candidate put to the gate also gets the gate's decision and its paired test; the flat
    `promotion_*` numbers are what MLflow logs of it.
    """
    metrics = {
        "evaluation": "rolling-origin backtest",
        "origins": [iso_day(dates, origin) for origin in backtest.origins],
        "horizon": horizon,
        **dated_scores(backtest.scores[family], dates),
    }
    if decision is not None:
        test = decision.test or {}
        metrics["promotion"] = {
            "promote": decision.promote,
            "champion": decision.champion,
            "reason": decision.reason,
            "test": decision.test,
        }
        metrics["promotion_promoted"] = 1.0 if decision.promote else 0.0
        for key in ("effect", "ratio", "ratio_low", "ratio_high", "p_value"):
            if isinstance(test.get(key), float):
                metrics[f"promotion_{key}"] = test[key]
    return metrics


def apply_decision(
    registry: Registry,
    decision: GateDecision,
    arrays: SeriesArrays,
    ingested: IngestResult,
    trigger: str,
) -> None:
    """Promote the candidate, or record its rejection and serve the champion on the new data."""
    if decision.promote:
        registry.promote(decision.candidate, reason=decision.reason, trigger=trigger)
        if decision.champion is not None:
            # the replaced champion forecasts from the same data too, so both can be scored on
            # the same days once actuals arrive (automated rollback, tractcast.workflows.rollback)
            with suppress(TractcastError, OSError, ValueError):
                registry.add_bundle(version_bundle(registry, decision.champion, arrays, ingested))
        return
    registry.reject(
        decision.candidate, champion=decision.champion, reason=decision.reason, trigger=trigger
    )
    if decision.champion is not None:
        # a champion saved by an older release, or whose files fail their checksums, cannot
        # predict here: it keeps its older bundle
        with suppress(TractcastError, OSError, ValueError):
            refresh_champion(registry, decision.champion, arrays, ingested)


def backtest_report(
    settings: Settings,
    count: int | None = None,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """Backtest every candidate on `count` origins from `start` to `end` (default: recent weeks).

    `champion` names the candidate the gate would serve; nothing is registered.
    """
    _, ingested = load_inputs(settings)
    arrays = series_arrays(ingested)
    candidates = candidate_forecasters(settings, arrays.first_weekday)
    count = settings.backtest_origins if count is None else count
    origins = origins_between(arrays.dates, count, start, end, settings.horizon)
    backtest = run_backtest(
        arrays.history, candidates, origins, horizon=settings.horizon, mask=arrays.observed
    )
    return json_safe(
        {
            "champion": choose_candidate(backtest.scores, BASELINE_FAMILIES),
            "origins": [iso_day(arrays.dates, origin) for origin in backtest.origins],
            "candidates": {
                name: {key: dated_scores(scores, arrays.dates)[key] for key in REPORT_KEYS}
                for name, scores in backtest.scores.items()
            },
        }
    )


def gate(
    candidates: dict[str, Forecaster],
    backtest: Backtest,
    champion: str | None,
    champion_scores: dict[str, Any] | None,
    how: str,
    settings: Settings,
    registry: Registry | None = None,
    data_version: str | None = None,
) -> GateDecision:
    """The gate's decision on this run's best candidate (named by family; the champion by version).

    The candidate is tested against the champion at the settings' level and minimum effect,
    with as many HAC lags as the origins' scoring windows overlap.
    """
    scores = {family: backtest.scores[family] for family in candidates if family in backtest.scores}
    baselines = {family for family in BASELINE_FAMILIES if family in scores}
    candidate = choose_candidate(scores, baselines)
    decision = decide_promotion(
        candidate,
        scores,
        baselines=baselines,
        champion=champion,
        champion_scores=champion_scores,
        level=settings.promotion_level,
        min_effect=settings.promotion_min_effect,
        lags=overlap_lags(backtest.origins, settings.horizon),
        same_recipe=newer_fit_of_champion(registry, champion, candidates[candidate], data_version),
    )
    if champion is None:
        return decision
    # an uncomparable champion gives way to the best candidate; the reason says why
    note = (
        f"({how})"
        if champion_scores is None
        else f"(champion re-evaluated on the same origins: {how})"
    )
    return GateDecision(
        decision.promote, decision.candidate, champion, f"{decision.reason} {note}", decision.test
    )


def newer_fit_of_champion(
    registry: Registry | None,
    champion: str | None,
    prototype: Forecaster,
    data_version: str | None,
) -> bool:
    """Whether the prototype is the champion's family and hyperparameters, on other data."""
    if registry is None or champion is None or data_version is None:
        return False
    try:
        found = registry.get_version(champion)
    except TractcastError:
        return False
    if found.data_version == data_version:
        return False  # the same recipe on the same data is the same model
    saved = dict(found.manifest.get("hyperparameters", {}))
    return found.family == prototype.family and saved == json_safe(
        json.loads(json.dumps(prototype.params(), default=str))
    )


def _lap(started: float, timings: dict[str, float]) -> float:
    """Seconds since the last recorded stage ended (stages are recorded in order)."""
    elapsed = time.monotonic() - started
    return round(max(0.0, elapsed - sum(timings.values())), 1)


def _headline(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The overall metrics, rounded; None where nothing was scored (strict JSON has no NaN)."""
    return {k: json_safe(float(np.round(metrics[k], 4))) for k in HEADLINE if k in metrics}


def _ingest_summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "format", "date_column", "tract_column", "value_column", "value_kind", "start", "end",
        "tracts_matched", "rows_read", "rows_quarantined", "quarantine_reasons",
    )  # fmt: skip
    return {k: report.get(k) for k in keys}
