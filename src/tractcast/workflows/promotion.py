"""The gate of a retrain: the champion re-scored on the same origins, the paired test, and
what follows the decision (promote, or reject and serve the champion on the newest data)."""

from __future__ import annotations

import json
from contextlib import suppress
from typing import Any

import pandas as pd

from tractcast.data.ingest import IngestResult
from tractcast.errors import TractcastError
from tractcast.evaluation.backtest import Backtest, run_backtest, score_fitted
from tractcast.evaluation.gate import GateDecision, choose_candidate, decide_promotion
from tractcast.evaluation.significance import overlap_lags
from tractcast.jsonsafe import json_safe
from tractcast.models.base import (
    BASELINE_FAMILIES,
    Forecaster,
    forecaster_from_params,
    load_forecaster,
)
from tractcast.registry.integrity import verify_version_files
from tractcast.registry.registry import Registry
from tractcast.serving.build import build_bundle
from tractcast.serving.bundle import Bundle
from tractcast.settings import Settings
from tractcast.workflows.candidates import SeriesArrays, iso_day


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


def gate(
    candidates: dict[str, Forecaster],
    backtest: Backtest,
    champion: str | None,
    champion_scores: dict[str, Any] | None,
    how: str,
    settings: Settings,
    registry: Registry | None = None,
    arrays: SeriesArrays | None = None,
    data_version: str | None = None,
) -> GateDecision:
    """The gate's decision on this run's best candidate (named by family; the champion by version).

    The candidate is tested against the champion at the settings' level and minimum effect,
    with as many HAC lags as the origins' scoring windows overlap. A candidate that is the
    champion's recipe refitted on newer data is tested against the champion's saved fit instead,
    on the origins after the champion's data ended (tractcast.evaluation.gate).
    """
    scores = {family: backtest.scores[family] for family in candidates if family in backtest.scores}
    baselines = {family for family in BASELINE_FAMILIES if family in scores}
    candidate = choose_candidate(scores, baselines)
    same_recipe = newer_fit_of_champion(registry, champion, candidates[candidate], data_version)
    if same_recipe and registry is not None and arrays is not None and champion is not None:
        champion_scores, how = score_saved_fit(registry, champion, backtest, arrays, settings)
    decision = decide_promotion(
        candidate,
        scores,
        baselines=baselines,
        champion=champion,
        champion_scores=champion_scores,
        level=settings.promotion_level,
        min_effect=settings.promotion_min_effect,
        lags=overlap_lags(backtest.origins, settings.horizon),
        same_recipe=same_recipe,
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


def score_saved_fit(
    registry: Registry,
    champion: str,
    backtest: Backtest,
    arrays: SeriesArrays,
    settings: Settings,
) -> tuple[dict[str, Any] | None, str]:
    """The champion's saved fit, not refitted, on the backtest origins after its data ended.

    There the saved fit and the backtest's refits of its recipe are both out of sample, so the
    two can be compared fairly. None (and why) when the saved fit cannot forecast here.
    """
    found = registry.get_version(champion)
    end = last_day_fitted(found.manifest, arrays.dates)
    after = [origin for origin in backtest.origins if origin > end]
    since = "its data's start" if end < 0 else iso_day(arrays.dates, end)
    how = f"its saved fit, not refitted, on the {len(after)} origins after its data ended ({since})"
    if not after:
        return {"per_origin": []}, how
    try:
        forecaster = saved_forecaster(registry, champion, arrays)
        scores = score_fitted(arrays.history, forecaster, after, settings.horizon, arrays.observed)
    except (TractcastError, OSError, ValueError) as exc:
        return None, f"champion {champion}'s saved fit could not forecast here ({exc})"
    return scores, how


def last_day_fitted(manifest: dict[str, Any], dates: pd.DatetimeIndex) -> int:
    """The column of the last day a version's data held, in today's dates (-1: before them).

    A version records its data's last day; an older one, its ingest's, or else its number of
    days, counted from today's first day.
    """
    end = manifest.get("last_day") or (manifest.get("ingest") or {}).get("end")
    if end:
        with suppress(TypeError, ValueError):
            return int(dates.searchsorted(pd.Timestamp(end), side="right")) - 1
    return min(int(manifest.get("days", len(dates))), len(dates)) - 1


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


def refresh_champion(
    registry: Registry, champion: str, arrays: SeriesArrays, ingested: IngestResult
) -> str:
    """Serve the champion's forecast from the newest data (a new bundle, same model)."""
    return registry.refresh_serving_bundle(version_bundle(registry, champion, arrays, ingested))


def version_bundle(
    registry: Registry, version: str, arrays: SeriesArrays, ingested: IngestResult
) -> Bundle:
    """A stored version's forecast from the newest data, as a bundle (nothing serves it yet)."""
    forecaster = saved_forecaster(registry, version, arrays)
    return build_bundle(
        ingested.series,
        arrays.tract_ids,
        forecaster.predict(arrays.history),
        version,
        ingested.data_version,
    )


def saved_forecaster(registry: Registry, version: str, arrays: SeriesArrays) -> Forecaster:
    """A stored version's fitted model, verified and ready to forecast from these arrays."""
    found = registry.get_version(version)
    assert found.path is not None
    verify_version_files(found)  # a corrupted .h5 is refused here, before Keras reads it
    forecaster = load_forecaster(found.path, found.family)
    if hasattr(forecaster, "first_weekday"):
        forecaster.first_weekday = arrays.first_weekday  # a property of the history, not the model
    return forecaster
