"""What a retrain registers: each candidate fitted on all the data, its metrics and manifest."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from tractcast import progress
from tractcast.data.ingest import IngestResult
from tractcast.evaluation.backtest import Backtest
from tractcast.evaluation.gate import GateDecision
from tractcast.geo.index import TractIndex
from tractcast.models.base import Forecaster, fit_shared
from tractcast.monitoring.drift import reference_sample
from tractcast.registry.registry import Registry
from tractcast.registry.store import ModelVersion
from tractcast.serving.build import build_bundle
from tractcast.workflows.candidates import SeriesArrays, dated_scores, iso_day


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
        "last_day": iso_day(arrays.dates, -1),  # what a refit must be compared after
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


def _ingest_summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "format", "date_column", "tract_column", "value_column", "value_kind", "start", "end",
        "tracts_matched", "rows_read", "rows_quarantined", "quarantine_reasons",
    )  # fmt: skip
    return {k: report.get(k) for k in keys}
