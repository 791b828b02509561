"""What the dashboard draws: a summary of every tract, and one tract's history and forecasts.

Pure functions over bundles, plus BundleShelf, which keeps the store's other bundles (found
through the registry's read-only view) so a chart can set earlier forecasts against what
happened since.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tractcast.errors import NotFound, Unavailable
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, load_bundle
from tractcast.serving.holder import BundleSource
from tractcast.validation import shown

log = logging.getLogger(__name__)

WEEK = 7
EARLIER_LIMIT = 3  # earlier forecasts drawn on a tract's chart
SCANNED_BUNDLES = 12  # newest bundle directories looked at for them
KEPT_BUNDLES = 16  # parsed bundles kept in memory


def tract_summaries(bundle: Bundle) -> dict[str, Any]:
    """Every tract's counts, its last week of new cases, its next week's forecast and growth.

    The week is 7 days, or the bundle's horizon when shorter; last_week and growth are null for
    a tract whose bundle holds fewer days of history than that, growth also after a week of 0.
    """
    window = min(WEEK, bundle.horizon)
    return {
        "as_of": bundle.as_of,
        "window_days": window,
        "model_version": bundle.model_version,
        "data_version": bundle.data_version,
        "tracts": [_summary(series, window) for series in bundle.tracts.values()],
    }


def summaries_json(bundle: Bundle, layer: str | None = None) -> str:
    """tract_summaries as JSON text, made once per bundle (bundles never change), ending with
    `"layer"` when the layer is named."""
    text: str | None = bundle.memo.get("dashboard-summaries")
    if text is None:
        text = json.dumps(tract_summaries(bundle), separators=(",", ":"), allow_nan=False)
        bundle.memo["dashboard-summaries"] = text
    if layer is None:
        return text
    return f"{text[:-1]},{json.dumps({'layer': layer}, separators=(',', ':'))[1:]}"


def tract_history(bundle: Bundle, tract_id: str, earlier: Sequence[Bundle] = ()) -> dict[str, Any]:
    """A tract's daily new cases up to as_of, its forecast, and the forecasts of earlier bundles.

    NotFound when the bundle has no such tract; earlier bundles without it are left out.
    """
    series = bundle.tracts.get(tract_id)
    if series is None:
        raise NotFound(
            f"tract {shown(tract_id)} has no forecast in model version {bundle.model_version}"
        )
    return {
        "tract_id": tract_id,
        "as_of": series.as_of,
        "model_version": bundle.model_version,
        "data_version": bundle.data_version,
        "total_cases": series.total_cases,
        "new_cases": series.new_cases,
        "history": history_days(series),
        "forecast": [_day(day) for day in series.forecast],
        "earlier": [
            {
                "model_version": other.model_version,
                "data_version": other.data_version,
                "as_of": other.tracts[tract_id].as_of,
                "forecast": [_day(day) for day in other.tracts[tract_id].forecast],
            }
            for other in earlier
            if tract_id in other.tracts
        ],
    }


def history_days(series: TractForecast) -> list[dict[str, Any]]:
    """The tract's history as dated days, oldest first, the last one on as_of."""
    end = date.fromisoformat(series.as_of)
    first = end - timedelta(days=len(series.history) - 1)
    return [
        {"date": (first + timedelta(days=offset)).isoformat(), "new_cases": count}
        for offset, count in enumerate(series.history)
    ]


def family_of(model_version: str) -> str:
    """The model family a version id names: "lstm" for "v0003-lstm"."""
    return model_version.partition("-")[2]


def _summary(series: TractForecast, window: int) -> dict[str, Any]:
    next_week = round(sum(day.new_cases for day in series.forecast[:window]), 2)
    last_week = sum(series.history[-window:]) if len(series.history) >= window else None
    growth = None
    if last_week is not None and last_week > 0:
        growth = round(next_week / last_week - 1, 4)
    return {
        "id": series.tract_id,
        "total_cases": series.total_cases,
        "new_cases": series.new_cases,
        "last_week": last_week,
        "next_week": next_week,
        "growth": growth,
    }


def _day(day: ForecastDay) -> dict[str, Any]:
    return {"date": day.date, "new_cases": day.new_cases, "lower": day.lower, "upper": day.upper}


class BundleShelf:
    """The bundles of a model store other than the serving one, parsed on demand and kept."""

    def __init__(
        self,
        source: BundleSource,
        *,
        loader: Callable[[Path], Bundle] = load_bundle,
        scanned: int = SCANNED_BUNDLES,
        kept: int = KEPT_BUNDLES,
    ) -> None:
        self.source = source
        self._load = loader
        self._scanned = scanned
        self._kept = kept
        self._lock = threading.Lock()
        self._bundles: OrderedDict[str, Bundle] = OrderedDict()  # directory name -> bundle
        self._failed: set[str] = set()  # directories that did not load: not tried again

    def earlier_than(self, served: Bundle, limit: int = EARLIER_LIMIT) -> list[Bundle]:
        """Up to `limit` other bundles: those made from older data first (newest data first;
        the serving version's own, then its family's, before others), then the others, newest
        first. Bundles that fail to load are passed over."""
        found = [
            bundle
            for name in self._newest_names(exclude=served.bundle_id)
            if (bundle := self._bundle(name)) is not None
        ]
        older = sorted(
            (bundle for bundle in found if bundle.as_of < served.as_of),
            key=lambda bundle: (
                bundle.as_of,
                bundle.model_version == served.model_version,
                family_of(bundle.model_version) == family_of(served.model_version),
            ),
            reverse=True,  # stable: ties keep their newest-first order
        )
        rest = [bundle for bundle in found if bundle.as_of >= served.as_of]
        return (older + rest)[:limit]

    def _newest_names(self, exclude: str) -> list[str]:
        try:
            names = [name for name in self.source.bundle_ids() if name != exclude]
        except OSError:
            return []  # no bundles directory (yet), or one being replaced
        return names[: self._scanned]

    def _bundle(self, name: str) -> Bundle | None:
        with self._lock:
            cached = self._bundles.get(name)
            if cached is not None:
                self._bundles.move_to_end(name)
                return cached
            if name in self._failed:
                return None
        try:
            bundle = self._load(self.source.bundle_path(name))
        except (Unavailable, OSError):
            log.warning("bundle %s failed to load; not drawn as an earlier forecast", name)
            with self._lock:
                self._failed.add(name)
            return None
        with self._lock:
            self._bundles[name] = bundle
            while len(self._bundles) > self._kept:
                self._bundles.popitem(last=False)
        return bundle
