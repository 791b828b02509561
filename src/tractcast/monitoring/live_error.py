"""Live error: what bundles forecast, against the actuals that arrived since.

Every bundle (`bundles/<version>@<data_version>/`) holds each tract's forecast for the 14 days
after its `as_of`. Once newer data holds those days, each forecast point is scored against the
observed daily new cases (imputed days are never scored), pooling horizons 1-14 the way the
backtest does, so a live WAPE compares with the validation WAPE in the version's metrics.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tractcast.errors import TractcastError
from tractcast.registry.store import LocalModelStore, check_bundle_id
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
    dates = np.sort(points["date"].unique())[-days:] if days > 0 else []
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


def version_bundles(store: LocalModelStore, version: str) -> list[Bundle]:
    """Every readable bundle a version made, oldest `as_of` first (a broken one is skipped)."""
    root = store.root / "bundles"
    if not root.is_dir():
        return []
    bundles = []
    for entry in os.scandir(root):
        if not entry.name.startswith(f"{version}@") or not entry.is_dir():
            continue
        try:
            bundles.append(store.bundle(check_bundle_id(entry.name)))
        except TractcastError:  # a corrupt bundle has no forecast to score
            continue
    return sorted(bundles, key=lambda bundle: (bundle.as_of, bundle.bundle_id))


def _day(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _rounded(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None
