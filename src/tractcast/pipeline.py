"""One retrain, end to end: ingest, train, evaluate, register, bundle, promote.

The CLI's `train`, `make up`'s first start and the retrainer's Celery task all call `retrain`.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tractcast.data.demo import resolve_inputs
from tractcast.data.ingest import IngestResult, ingest_source
from tractcast.data.series import series_matrix
from tractcast.errors import Conflict
from tractcast.evaluation.holdout import evaluate_on_holdout
from tractcast.geo.index import TractIndex
from tractcast.models.base import Forecaster, make_forecaster
from tractcast.registry.lifecycle import open_stores, promote_version, register_version
from tractcast.serving.build import build_bundle
from tractcast.settings import Settings

CANDIDATE = "lstm"
BASELINES = ("persistence",)


@dataclass(frozen=True)
class RetrainOutcome:
    version: str
    data_version: str
    promoted: bool
    bundle_id: str
    metrics: dict[str, Any]
    seconds: float


def load_inputs(settings: Settings) -> tuple[TractIndex, IngestResult]:
    """The tract layer and the ingested series of the configured (or demo) source."""
    source, tracts = resolve_inputs(settings)
    index = TractIndex.from_file(tracts, id_field=settings.tract_id_field)
    return index, ingest_source(source, index)


def candidate_forecasters(settings: Settings, first_weekday: int) -> dict[str, Forecaster]:
    """The LSTM candidate and the baselines it is compared with.

    `first_weekday` is the weekday (Monday 0) of the first day of every history they will see.
    """
    lstm = make_forecaster(
        CANDIDATE,
        horizon=settings.horizon,
        lookback=settings.lookback,
        epochs=settings.epochs,
        seed=settings.seed,
        first_weekday=first_weekday,
    )
    candidates: dict[str, Forecaster] = {CANDIDATE: lstm}
    for family in BASELINES:
        candidates[family] = make_forecaster(family, horizon=settings.horizon)
    return candidates


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
def retrain_lock(store_root: Path) -> Iterator[None]:
    """Only one retrain per store at a time; a second one is refused, not queued."""
    Path(store_root).mkdir(parents=True, exist_ok=True)
    with open(Path(store_root) / ".retrain.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Conflict("a retrain is already running") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retrain(settings: Settings, trigger: str = "manual") -> RetrainOutcome:
    """Train a candidate on the newest data, register it, bundle its forecast and promote it."""
    started = time.monotonic()
    with retrain_lock(Path(settings.store)):
        store, metadata = open_stores(settings)
        index, ingested = load_inputs(settings)
        tract_ids, dates, history = series_matrix(ingested.series, value="new_cases")
        _, _, imputed = series_matrix(ingested.series, value="imputed")
        candidates = candidate_forecasters(settings, first_weekday=dates[0].weekday())
        metrics = evaluate_on_holdout(
            history, candidates, horizon=settings.horizon, mask=~imputed.astype(bool)
        )
        model = candidates[CANDIDATE]
        version = register_version(
            store,
            metadata,
            CANDIDATE,
            model.save,
            metrics={
                "holdout": metrics[CANDIDATE],
                "baselines": {b: metrics[b] for b in BASELINES},
            },
            manifest={
                "hyperparameters": model.params(),
                "git_commit": git_commit(),
                "data_version": ingested.data_version,
                "trigger": trigger,
                "tracts": len(tract_ids),
                "tract_id_field": index.id_field,
                "days": int(history.shape[1]),
                "ingest": _ingest_summary(ingested.report),
            },
            trigger=trigger,
        )
        bundle = build_bundle(
            ingested.series,
            tract_ids,
            model.predict(history),
            version.version,
            ingested.data_version,
        )
        bundle_id = store.add_bundle(bundle)
        promote_version(
            store, metadata, version.version, reason="newest candidate", trigger=trigger
        )
    return RetrainOutcome(
        version=version.version,
        data_version=ingested.data_version,
        promoted=True,
        bundle_id=bundle_id,
        metrics={name: _headline(m) for name, m in metrics.items()},
        seconds=round(time.monotonic() - started, 1),
    )


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(np.round(metrics[k], 4)) for k in ("mae", "rmse", "mse", "mape", "wape")}


def _ingest_summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("format", "date_column", "tract_column", "value_column", "value_kind", "start", "end")
    return {k: report.get(k) for k in keys}
