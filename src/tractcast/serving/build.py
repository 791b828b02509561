"""Turn a series and a forecast into a serving bundle."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tractcast.clock import utc_now
from tractcast.models.base import Forecast
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, bundle_id_for

HISTORY_DAYS = 120  # daily new cases kept per tract in a bundle, for charts of what happened


def latest_counts(series: pd.DataFrame) -> pd.DataFrame:
    """Each tract's last day: date, total_cases and new_cases, indexed by tract_id."""
    last = series.sort_values("date").groupby("tract_id", sort=True).tail(1)
    return last.set_index("tract_id")[["date", "total_cases", "new_cases"]]


def build_bundle(
    series: pd.DataFrame,
    tract_ids: list[str],
    forecast: Forecast,
    model_version: str,
    data_version: str,
    history_days: int = HISTORY_DAYS,
) -> Bundle:
    """A bundle with every tract's latest counts, its recent daily history and its forecast
    after the last observed day."""
    latest = latest_counts(series)
    as_of = pd.Timestamp(series["date"].max()).normalize()
    history = recent_history(series, as_of, history_days)
    horizon = forecast.point.shape[1]
    days = [(as_of + pd.Timedelta(days=h)).date().isoformat() for h in range(1, horizon + 1)]
    tracts: dict[str, TractForecast] = {}
    for row, tract_id in enumerate(tract_ids):
        counts = latest.loc[tract_id]
        tracts[tract_id] = TractForecast(
            tract_id=tract_id,
            as_of=as_of.date().isoformat(),
            total_cases=int(round(float(counts["total_cases"]))),
            new_cases=int(round(float(counts["new_cases"]))),
            forecast=tuple(
                ForecastDay(
                    date=days[h],
                    new_cases=_rounded(forecast.point[row, h]),
                    lower=_rounded(forecast.lower[row, h]),
                    upper=_rounded(forecast.upper[row, h]),
                    bands=tuple(
                        (level, _rounded(lower[row, h]), _rounded(upper[row, h]))
                        for level, (lower, upper) in sorted(forecast.bands.items())
                    ),
                )
                for h in range(horizon)
            ),
            history=history.get(tract_id, ()),
        )
    return Bundle(
        bundle_id=bundle_id_for(model_version, data_version),
        model_version=model_version,
        data_version=data_version,
        as_of=as_of.date().isoformat(),
        created_at=utc_now(),
        horizon=horizon,
        tracts=tracts,
    )


def recent_history(
    series: pd.DataFrame, as_of: pd.Timestamp, days: int
) -> dict[str, tuple[int, ...]]:
    """Each tract's daily new cases over the `days` days ending at as_of, oldest first.

    A tract observed only from a later day starts there; a day missing inside the window
    counts 0 (the cleaned series has none).
    """
    if days <= 0:
        return {}
    start = as_of - pd.Timedelta(days=days - 1)
    dates = pd.to_datetime(series["date"]).dt.normalize()
    window = series.loc[(dates >= start) & (dates <= as_of), ["tract_id", "new_cases"]]
    wide = window.assign(date=dates).pivot_table(
        index="tract_id", columns="date", values="new_cases", aggfunc="sum"
    )
    wide = wide.reindex(columns=pd.date_range(start, as_of, freq="D"))
    history: dict[str, tuple[int, ...]] = {}
    for tract_id, row in zip(wide.index, wide.to_numpy(dtype=float), strict=True):
        seen = np.flatnonzero(~np.isnan(row))
        if seen.size == 0:
            continue
        counts = np.nan_to_num(row[seen[0] :]).round().astype(np.int64)
        history[str(tract_id)] = tuple(counts.tolist())
    return history


def _rounded(value: float) -> float:
    return round(float(max(np.nan_to_num(value), 0.0)), 2)
