"""Live error: what bundles forecast, against the actuals that arrived since.

Every bundle (`<version>@<data_version>`) holds each tract's forecast for the 14 days
after its `as_of`. Once newer data holds those days, each forecast point is scored against the
observed daily new cases (imputed days are never scored), pooling horizons 1-14 the way the
backtest does, so a live WAPE compares with the validation WAPE in the version's metrics.

Live skill puts the served model beside the weekly seasonal naive on the same points: the naive
forecast of a day is the actual of the same weekday in the week before the bundle's `as_of`, so
it needs no stored model, and a point enters only when both forecasts can be scored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tractcast.errors import TractcastError
from tractcast.jsonsafe import json_safe
from tractcast.registry.store import StoreView
from tractcast.serving.bundle import Bundle

POINT_KEY = ["as_of", "tract_id", "date"]


@dataclass(frozen=True)
class LiveError:
    """A version's forecast error over its most recent `days` days that have actuals."""

    version: str
    days: int
    points: int
    start: str | None
    end: str | None
    mae: float | None
    wape: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """The champion and its predecessor on the same forecast points (same days and tracts)."""

    champion: str
    predecessor: str
    days: int
    points: int
    start: str | None
    end: str | None
    champion_mae: float | None
    predecessor_mae: float | None
    champion_wape: float | None
    predecessor_wape: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def observed_actuals(series: pd.DataFrame) -> pd.Series:
    """Observed daily new cases indexed by (tract_id, date); imputed days left out."""
    kept = series.loc[~series["imputed"].astype(bool), ["tract_id", "date", "new_cases"]]
    index = pd.MultiIndex.from_arrays(
        [kept["tract_id"].astype(str), pd.to_datetime(kept["date"]).dt.normalize()],
        names=["tract_id", "date"],
    )
    return pd.Series(kept["new_cases"].to_numpy(dtype=float), index=index, name="actual")


def forecast_points(bundle: Bundle) -> pd.DataFrame:
    """One row per tract and forecast day: as_of, tract_id, date, horizon, predicted."""
    rows = [
        (tract.as_of, tract_id, day.date, horizon, day.new_cases)
        for tract_id, tract in bundle.tracts.items()
        for horizon, day in enumerate(tract.forecast, start=1)
    ]
    frame = pd.DataFrame(rows, columns=["as_of", "tract_id", "date", "horizon", "predicted"])
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def scored_points(bundles: Iterable[Bundle], actuals: pd.Series) -> pd.DataFrame:
    """Every forecast point of the bundles that has an observed actual, with that actual."""
    frames = [forecast_points(bundle) for bundle in bundles]
    if not frames:
        return pd.DataFrame(columns=[*POINT_KEY, "horizon", "predicted", "actual"])
    points = pd.concat(frames, ignore_index=True).drop_duplicates(POINT_KEY)
    joined = points.join(actuals, on=["tract_id", "date"], how="inner")
    return joined.dropna(subset=["actual"]).reset_index(drop=True)


def last_days(points: pd.DataFrame, days: int) -> pd.DataFrame:
    """The points whose day is among the `days` most recent days that have any point."""
    dates = np.sort(points["date"].unique())[-days:] if days > 0 else np.empty(0)
    return points[points["date"].isin(dates)]


def live_error(version: str, points: pd.DataFrame, days: int) -> LiveError:
    """MAE and WAPE of a version's scored points over its `days` most recent scored days."""
    window = last_days(points, days)
    actual = window["actual"].to_numpy(dtype=float)
    error = np.abs(window["predicted"].to_numpy(dtype=float) - actual)
    return LiveError(
        version=version,
        days=int(window["date"].nunique()),
        points=int(len(window)),
        start=_day(window["date"].min()),
        end=_day(window["date"].max()),
        mae=_rounded(error.mean()) if error.size else None,
        wape=_rounded(error.sum() / actual.sum()) if actual.sum() > 0 else None,
    )


def compare_on_same_points(
    champion: str,
    champion_points: pd.DataFrame,
    predecessor: str,
    predecessor_points: pd.DataFrame,
    days: int,
) -> Comparison:
    """Both versions' error on the forecast points both made (same data, days and tracts)."""
    paired = champion_points.merge(
        predecessor_points[[*POINT_KEY, "predicted"]], on=POINT_KEY, suffixes=("", "_predecessor")
    )
    window = last_days(paired, days)
    actual = window["actual"].to_numpy(dtype=float)
    mine = np.abs(window["predicted"].to_numpy(dtype=float) - actual)
    theirs = np.abs(window["predicted_predecessor"].to_numpy(dtype=float) - actual)
    total = actual.sum()
    return Comparison(
        champion=champion,
        predecessor=predecessor,
        days=int(window["date"].nunique()),
        points=int(len(window)),
        start=_day(window["date"].min()),
        end=_day(window["date"].max()),
        champion_mae=_rounded(mine.mean()) if mine.size else None,
        predecessor_mae=_rounded(theirs.mean()) if theirs.size else None,
        champion_wape=_rounded(mine.sum() / total) if total > 0 else None,
        predecessor_wape=_rounded(theirs.sum() / total) if total > 0 else None,
    )


@dataclass(frozen=True)
class LiveSkill:
    """A version's live MAE relative to the seasonal naive's, on the same points, per horizon."""

    version: str
    days: int
    points: int
    start: str | None
    end: str | None
    mae: float | None
    naive_mae: float | None
    relative_mae: float | None
    per_horizon: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_naive(points: pd.DataFrame, actuals: pd.Series) -> pd.DataFrame:
    """Scored points with the seasonal naive's forecast beside them; points without one dropped.

    Horizon h after `as_of` repeats the day `as_of` - 7 + ((h - 1) mod 7) + 1, as
    tractcast.models.baselines.seasonal_naive_point does.
    """
    if points.empty:
        return points.assign(naive=pd.Series(dtype=float))
    offset = (points["horizon"].to_numpy(dtype=int) - 1) % 7 - 6
    naive_day = points["as_of"] + pd.to_timedelta(offset, unit="D")
    key = pd.MultiIndex.from_arrays(
        [points["tract_id"].astype(str), naive_day.dt.normalize()], names=["tract_id", "date"]
    )
    naive = actuals[~actuals.index.duplicated()].reindex(key).to_numpy(dtype=float)
    return points.assign(naive=naive).dropna(subset=["naive"]).reset_index(drop=True)


def live_skill(version: str, points: pd.DataFrame, days: int) -> LiveSkill:
    """MAE of the version and of the seasonal naive over the `days` most recent scored days."""
    window = last_days(points, days)
    error = (window["predicted"] - window["actual"]).abs()
    naive_error = (window["naive"] - window["actual"]).abs()
    per_horizon = []
    for horizon, rows in window.assign(error=error, naive_error=naive_error).groupby("horizon"):
        mine, theirs = float(rows["error"].mean()), float(rows["naive_error"].mean())
        per_horizon.append(
            {
                "horizon": int(horizon),
                "points": int(len(rows)),
                "mae": _rounded(mine),
                "naive_mae": _rounded(theirs),
                "relative_mae": _rounded(mine / theirs) if theirs > 0 else None,
            }
        )
    mine = float(error.mean()) if len(error) else np.nan
    theirs = float(naive_error.mean()) if len(error) else np.nan
    return LiveSkill(
        version=version,
        days=int(window["date"].nunique()),
        points=int(len(window)),
        start=_day(window["date"].min()),
        end=_day(window["date"].max()),
        mae=_rounded(mine),
        naive_mae=_rounded(theirs),
        relative_mae=_rounded(mine / theirs) if theirs > 0 else None,
        per_horizon=per_horizon,
    )


def bundle_actuals(bundle: Bundle) -> pd.Series:
    """The daily new cases a bundle's tract histories hold, indexed by (tract_id, date)."""
    end = pd.Timestamp(bundle.as_of).normalize()
    tract_ids, dates, values = [], [], []
    for tract_id, tract in bundle.tracts.items():
        n = len(tract.history)
        if n == 0:
            continue
        tract_ids.append(np.full(n, tract_id, dtype=object))
        dates.append(pd.date_range(end - pd.Timedelta(days=n - 1), end, freq="D"))
        values.append(np.asarray(tract.history, dtype=float))
    if not values:
        empty = pd.MultiIndex.from_arrays([[], pd.DatetimeIndex([])], names=["tract_id", "date"])
        return pd.Series([], index=empty, name="actual", dtype=float)
    index = pd.MultiIndex.from_arrays(
        [np.concatenate(tract_ids), pd.DatetimeIndex(np.concatenate(dates))],
        names=["tract_id", "date"],
    )
    return pd.Series(np.concatenate(values), index=index, name="actual")


_NO_SERIES = pd.DataFrame({"tract_id": [], "date": [], "new_cases": [], "imputed": []})
_SKILL_MEMO: dict[tuple[str, ...], LiveSkill] = {}


def served_live_skill(store: StoreView, version: str, days: int) -> LiveSkill:
    """The serving version's live skill, with the newest bundle's histories as the actuals.

    Remembered per set of bundles, so a scrape or a request after the first reads no bundle.
    """
    current_bundle_id = store.current_bundle_id()
    key = (version, str(days), str(current_bundle_id), *sorted(store.bundle_ids(version)))
    if key not in _SKILL_MEMO:
        bundles = version_bundles(store, version)
        newest = (
            store.bundle(current_bundle_id)
            if current_bundle_id
            else (bundles[-1] if bundles else None)
        )
        actuals = bundle_actuals(newest) if newest is not None else observed_actuals(_NO_SERIES)
        points = with_naive(scored_points(bundles, actuals), actuals)
        _SKILL_MEMO.clear()  # only the newest matters
        _SKILL_MEMO[key] = live_skill(version, points, days)
    return _SKILL_MEMO[key]


def version_bundles(store: StoreView, version: str) -> list[Bundle]:
    """Every readable bundle a version made, oldest `as_of` first (a broken one is skipped)."""
    bundles = []
    for bundle_id in store.bundle_ids(version):
        try:
            bundles.append(store.bundle(bundle_id))
        except TractcastError:  # a corrupt bundle has no forecast to score
            continue
    return sorted(bundles, key=lambda bundle: (bundle.as_of, bundle.bundle_id))


def _day(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _rounded(value: float) -> float | None:
    return json_safe(round(float(value), 4))
