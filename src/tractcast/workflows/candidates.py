"""What a retrain puts to the test: the inputs as arrays, the candidate families, the origins.

`backtest_report` scores every candidate on chosen origins without registering anything (the
CLI's `backtest`, bench.backtest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tractcast.data.demo import resolve_inputs
from tractcast.data.ingest import IngestResult
from tractcast.data.series import series_matrix
from tractcast.evaluation.backtest import origins_between, recent_origins, run_backtest
from tractcast.evaluation.gate import choose_candidate
from tractcast.geo.index import TractIndex
from tractcast.jsonsafe import json_safe
from tractcast.models.base import BASELINE_FAMILIES, Forecaster, make_forecaster
from tractcast.settings import Settings
from tractcast.workflows.releases import ingest_current_release

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


def dated_scores(scores: dict[str, Any], dates: pd.DatetimeIndex) -> dict[str, Any]:
    """Backtest scores with each per-origin entry naming its origin as an ISO date."""
    per_origin = [
        {**entry, "origin": iso_day(dates, entry["origin"])} for entry in scores["per_origin"]
    ]
    return {**scores, "per_origin": per_origin}


def iso_day(dates: pd.DatetimeIndex, index: int) -> str:
    return dates[index].date().isoformat()
