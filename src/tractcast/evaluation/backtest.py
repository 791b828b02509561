"""Rolling-origin backtest: refit every candidate before each origin, score the days after it.

An origin is the first forecast day (a column index of the history). At each origin every
candidate is a fresh copy of its prototype, fitted on the days before the origin only, and its
forecast is scored on the `horizon` days from the origin on. Scores pool every origin and tract;
imputed actuals (mask False) are never scored. The weekly seasonal naive forecast at the same
origins is the reference of `relative_mae`.

A full refit per origin is what "fitted on data before it only" asks for; the LSTM keeps each fit
cheap instead (a sample of windows, early stopping, and a warm start from the previous origin's
weights, which saw only earlier days), and every fit starts from the same seed so the same data
and configuration give the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tractcast import progress
from tractcast.errors import InvalidInput
from tractcast.evaluation.metrics import geometric_mean, ratio, score_forecast
from tractcast.models.base import (
    Forecast,
    Forecaster,
    check_history,
    fit_shared,
    make_forecaster,
    stack_forecasts,
)

REFERENCE = "seasonal_naive"
ORIGIN_STEP = 7  # days between the default recent origins: one a week


@dataclass(frozen=True)
class Backtest:
    """Scores of each candidate over the same origins (oldest first).

    `last_fits` holds each candidate's fit before the last origin: where a final fit on all the
    data warm-starts from.
    """

    origins: list[int]
    scores: dict[str, dict[str, Any]]
    last_fits: dict[str, Forecaster] = field(default_factory=dict, compare=False, repr=False)


def spread_origins(first: int, last: int, count: int) -> list[int]:
    """`count` origins spread evenly over [first, last] (day indices), oldest first, no repeats."""
    if count < 1:
        raise InvalidInput(f"at least one origin is needed, got {count}")
    if last < first:
        raise InvalidInput(f"the first origin (day {first}) is after the last (day {last})")
    return sorted({int(round(day)) for day in np.linspace(first, last, count)})


def recent_origins(
    n_days: int, count: int, horizon: int = 14, step: int = ORIGIN_STEP, aligned: bool = False
) -> list[int]:
    """The `count` most recent weekly origins whose `horizon` days are all in the history.

    `aligned` puts every origin on a multiple of `step` from day 0, so the next release (a month
    later) scores mostly the same weeks as this one (and reuses the baselines' fits there).
    """
    last = n_days - horizon
    if aligned:
        last -= last % step
    origins = [last - step * k for k in range(count)][::-1]
    if origins[0] < 1:
        raise InvalidInput(
            f"a history of {n_days} days has no room for {count} origins {step} days apart"
        )
    return origins


def origins_between(
    dates: pd.DatetimeIndex,
    count: int,
    start: str | None = None,
    end: str | None = None,
    horizon: int = 14,
) -> list[int]:
    """`count` origins spread evenly from `start` to `end` (ISO dates), as day indices.

    `end` defaults to the last day that still has `horizon` days after it; `start` defaults to
    `count - 1` weeks before `end`, so the default is the most recent weeks.
    """
    last = len(dates) - horizon
    if last < 0:
        raise InvalidInput(f"the data has {len(dates)} days, fewer than the horizon {horizon}")
    stop = last if end is None else day_index(dates, end, "--to")
    begin = stop - ORIGIN_STEP * (count - 1) if start is None else day_index(dates, start, "--from")
    if stop > last:
        latest = dates[last].date().isoformat()
        raise InvalidInput(f"the last origin with {horizon} days to score after it is {latest}")
    return spread_origins(max(begin, 0), stop, count)


def day_index(dates: pd.DatetimeIndex, day: str, name: str = "date") -> int:
    """The column of an ISO date in the series, or InvalidInput saying what range is valid."""
    try:
        stamp = pd.Timestamp(day).normalize()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a date like 2024-01-31, got {str(day)[:40]!r}") from exc
    if pd.isna(stamp) or not dates[0] <= stamp <= dates[-1]:
        first, final = dates[0].date().isoformat(), dates[-1].date().isoformat()
        raise InvalidInput(f"{name} {str(day)[:40]} is outside the data ({first} .. {final})")
    return int(dates.get_indexer([stamp])[0])


def check_origins(history: np.ndarray, origins: list[int], min_days: int, horizon: int) -> None:
    """Raise InvalidInput unless every origin leaves `min_days` before it and `horizon` after."""
    n_days = history.shape[1]
    if not origins:
        raise InvalidInput("a backtest needs at least one origin")
    for origin in origins:
        if origin < min_days:
            raise InvalidInput(
                f"origin at day {origin} leaves {origin} days to fit on, at least {min_days} needed"
            )
        if origin + horizon > n_days:
            raise InvalidInput(
                f"origin at day {origin} has fewer than {horizon} days after it to score"
            )


def forecasts_at_origins(
    history: np.ndarray,
    prototype: Forecaster,
    origins: list[int],
    fits: dict[str, Forecaster] | None = None,
) -> list[Forecast]:
    """A fresh copy of the prototype fitted before each origin, and its forecast from there.

    The first origin's fit starts cold, each later one from the one before (a warm start: it saw
    earlier days only); the last fit goes into `fits` under "last" when given.
    """
    forecasts = []
    previous = None
    ordered = sorted(origins)
    for k, origin in enumerate(ordered, start=1):
        progress.advance("backtest", f"{prototype.family}, origin {k} of {len(ordered)}")
        previous = fit_shared(prototype, history[:, :origin], warm=previous)
        forecasts.append(previous.predict(history[:, :origin]))
    if fits is not None and previous is not None:
        fits["last"] = previous
    return forecasts


def score_fitted(
    history: np.ndarray,
    forecaster: Forecaster,
    origins: list[int],
    horizon: int,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """A model fitted once, not refitted, forecasting from each origin: scored as a backtest.

    Only origins after the last day it was fitted on score it out of sample.
    """
    origins = sorted(int(origin) for origin in origins)
    check_origins(history, origins, 1, horizon)
    forecasts = [forecaster.predict(history[:, :origin]) for origin in origins]
    return score_origins(history, forecasts, origins, horizon, mask)


def reference_forecasts(history: np.ndarray, origins: list[int], horizon: int) -> list[Forecast]:
    """The weekly seasonal naive's forecasts (point and intervals) at each origin."""
    return forecasts_at_origins(history, make_forecaster(REFERENCE, horizon=horizon), origins)


def stack_windows(array: np.ndarray, origins: list[int], horizon: int) -> np.ndarray:
    """The `horizon` days from each origin, stacked: (n_origins * n_tracts, horizon)."""
    return np.concatenate([array[:, origin : origin + horizon] for origin in origins], axis=0)


def score_origins(
    history: np.ndarray,
    forecasts: list[Forecast],
    origins: list[int],
    horizon: int,
    mask: np.ndarray | None = None,
    references: list[Forecast] | None = None,
) -> dict[str, Any]:
    """Pooled metrics (overall, per horizon, relative to the seasonal naive), the same per origin,
    and the robust relative skill: the geometric mean over origins of each origin's ratio."""
    actual = stack_windows(history, origins, horizon)
    scored = None if mask is None else stack_windows(mask, origins, horizon)
    if references is None:
        references = reference_forecasts(history, origins, horizon)
    reference = stack_forecasts(references)
    scores = score_forecast(actual, stack_forecasts(forecasts), scored, reference)
    n_tracts = history.shape[0]
    per_origin = []
    for k, origin in enumerate(origins):
        rows = slice(k * n_tracts, (k + 1) * n_tracts)
        part = None if scored is None else scored[rows]
        one = score_forecast(actual[rows], forecasts[k], part, None)
        naive = score_forecast(actual[rows], references[k], part, None)
        one.pop("per_horizon")
        one["relative_mae"] = ratio(one["mae"], naive["mae"])
        one["relative_wis"] = ratio(one["wis"], naive["wis"])
        per_origin.append({"origin": origin, **one})
    scores["per_origin"] = per_origin
    for key in ("mae", "wis"):
        scores[f"robust_relative_{key}"] = geometric_mean(
            [entry[f"relative_{key}"] for entry in per_origin]
        )
    covered = [entry["coverage"] for entry in per_origin if np.isfinite(entry["coverage"])]
    scores["coverage_min"] = min(covered) if covered else float("nan")
    scores["coverage_max"] = max(covered) if covered else float("nan")
    return scores


def run_backtest(
    history: np.ndarray,
    candidates: dict[str, Forecaster],
    origins: list[int],
    *,
    horizon: int = 14,
    mask: np.ndarray | None = None,
) -> Backtest:
    """Fit each candidate (a prototype, left unfitted) before every origin and score it after."""
    history = check_history(history, 1)
    if mask is not None and np.shape(mask) != history.shape:
        raise InvalidInput(f"mask {np.shape(mask)} and history {history.shape} differ in shape")
    origins = sorted(int(origin) for origin in origins)
    for name, prototype in candidates.items():
        if prototype.horizon != horizon:
            raise InvalidInput(
                f"candidate {name!r} has horizon {prototype.horizon}, the backtest needs {horizon}"
            )
        check_origins(history, origins, prototype.min_days, horizon)
    mask = None if mask is None else np.asarray(mask, dtype=bool)
    # the seasonal naive's reference forecasts are fitted first, as one more candidate
    steps = (len(candidates) + 1) * len(origins)
    progress.begin("backtest", steps, ", ".join([*candidates, "the reference"]))
    references = reference_forecasts(history, origins, horizon)
    scores, last_fits = {}, {}
    for name, prototype in candidates.items():
        fits: dict[str, Forecaster] = {}
        forecasts = forecasts_at_origins(history, prototype, origins, fits)
        scores[name] = score_origins(history, forecasts, origins, horizon, mask, references)
        last_fits[name] = fits["last"]
    return Backtest(origins=origins, scores=scores, last_fits=last_fits)


def report_table(report: dict[str, Any]) -> str:
    """The backtest report as a table for people: one row per candidate."""
    columns = (
        "mae", "wape", "wis", "relative_mae", "relative_wis", "robust_relative_mae",
        "robust_relative_wis", "coverage",
    )  # fmt: skip
    lines = [
        f"origins: {', '.join(report['origins'])}",
        f"{'candidate':<16}"
        + "".join(f"{name.replace('robust_relative', 'rob.rel'):>14}" for name in columns),
    ]
    for name, scores in report["candidates"].items():
        cells = "".join(
            f"{'-':>14}" if scores.get(key) is None else f"{scores[key]:>14.4g}" for key in columns
        )
        lines.append(f"{name:<16}{cells}")
    lines.append(f"champion (what the promotion gate would serve): {report['champion']}")
    return "\n".join(lines)
