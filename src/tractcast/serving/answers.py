"""Public answers built from a serving bundle: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tractcast.errors import InvalidInput, NotFound, TractcastError
from tractcast.geo.index import Tract, TractHit
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast

OUTSIDE_MESSAGE = "the point lies outside every tract"


def forecast_answer(bundle: Bundle, tract: Tract | None, horizon: int) -> dict[str, Any]:
    """A tract's counts and its forecast for the next `horizon` days.

    `tract` None means the point lies outside every tract: NotFound, like a tract without data.
    """
    if tract is None:
        raise NotFound(OUTSIDE_MESSAGE)
    series = _series_of(bundle, tract)
    if horizon < 1 or horizon > len(series.forecast):
        raise InvalidInput(
            f"horizon must be between 1 and {len(series.forecast)} for model version "
            f"{bundle.model_version}"
        )
    return {
        "tract": {"id": tract.id, "name": tract.name},
        "as_of": series.as_of,
        "total_cases": series.total_cases,
        "new_cases": series.new_cases,
        "next_day": _day(series.forecast[0]),
        "forecast": [_day(day) for day in series.forecast[:horizon]],
        "model_version": bundle.model_version,
        "data_version": bundle.data_version,
    }


def batch_answer(bundle: Bundle, tracts: Sequence[Tract | None], horizon: int) -> dict[str, Any]:
    """One answer per point, in order; a point that cannot be answered gets its error inline."""
    results: list[dict[str, Any]] = []
    for tract in tracts:
        try:
            results.append(forecast_answer(bundle, tract, horizon))
        except TractcastError as exc:
            results.append(exc.to_dict())
    return {
        "results": results,
        "model_version": bundle.model_version,
        "data_version": bundle.data_version,
    }


def radius_stats(
    bundle: Bundle,
    hits: Sequence[TractHit],
    *,
    center: tuple[float, float],
    radius_km: float,
) -> dict[str, Any]:
    """Counts of every tract meeting the circle and their totals (always the sum of the list).

    Tracts the bundle has no data for are named under `without_data`, outside the totals.
    """
    tracts: list[dict[str, Any]] = []
    without_data: list[dict[str, str]] = []
    for hit in sorted(hits, key=lambda hit: (hit.distance_km, hit.tract.id)):
        series = bundle.tracts.get(hit.tract.id)
        if series is None or not series.forecast:
            without_data.append({"id": hit.tract.id, "name": hit.tract.name})
            continue
        tracts.append(
            {
                "id": hit.tract.id,
                "name": hit.tract.name,
                "distance_km": hit.distance_km,
                "total_cases": series.total_cases,
                "new_cases": series.new_cases,
                "next_day": _day(series.forecast[0]),
            }
        )
    return {
        "center": {"lat": center[0], "lon": center[1]},
        "radius_km": radius_km,
        "tracts": tracts,
        "without_data": without_data,
        "totals": {
            "tracts": len(tracts),
            "total_cases": sum(item["total_cases"] for item in tracts),
            "new_cases": sum(item["new_cases"] for item in tracts),
            "next_day": sum(item["next_day"]["new_cases"] for item in tracts),
        },
        "as_of": bundle.as_of,
        "model_version": bundle.model_version,
        "data_version": bundle.data_version,
    }


def _series_of(bundle: Bundle, tract: Tract) -> TractForecast:
    series = bundle.tracts.get(tract.id)
    if series is None or not series.forecast:
        raise NotFound(
            f"tract {tract.id} ({tract.name}) has no forecast in model version "
            f"{bundle.model_version}, data version {bundle.data_version}"
        )
    return series


def _day(day: ForecastDay) -> dict[str, Any]:
    return {"date": day.date, "new_cases": day.new_cases, "lower": day.lower, "upper": day.upper}
