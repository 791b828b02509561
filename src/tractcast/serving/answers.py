"""Public answers built from a serving bundle: pure functions, no I/O."""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from tractcast.errors import InvalidInput, NotFound, TractcastError
from tractcast.geo.index import RadiusHits, Tract, TractHit
from tractcast.serving.bundle import MAIN_INTERVAL, Bundle, ForecastDay, TractForecast

OUTSIDE_MESSAGE = "the point lies outside every tract"
# Rendered tracts kept per bundle, by the memory their text takes: a census layer's tract with
# three intervals is about 4 KB, so a count alone (50,000 before) let a worker grow by 190 MB.
MEMO_BYTES = 48 * 1024 * 1024
MEMO_USED = "rendered_bytes"  # the memo's key for what its rendered tracts take
# Radius answers kept per bundle, newest used first: 50 km around a city centre of a census
# layer is 1.4-2 MB of JSON and 5-10 ms of CPU to find and render.
RADIUS_ANSWERS_BYTES = 16 * 1024 * 1024
# What radius answers write distances with (see _distance_texts): whole km below 1,000 (every
# radius the API takes is less), and the metres after the point as repr writes them.
_KM_TEXTS = np.array([str(km) for km in range(1000)], dtype=object)
_METRE_TEXTS = np.array([repr(metre / 1000)[1:] for metre in range(1000)], dtype=object)


class RadiusFinder(Protocol):
    """A copy of a tract layer that finds the tracts meeting a circle (geo.client.LayerCopy)."""

    @property
    def layer(self) -> str:
        """The layer's fingerprint: it changes when the layer does."""
        ...

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> RadiusHits: ...


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


def forecast_json(
    bundle: Bundle, tract: Tract | None, horizon: int, layer: str | None = None
) -> str:
    """forecast_answer as JSON text, assembled from pieces rendered once per bundle and tract.

    The hot path of the API: a single point or a batch of thousands costs string joins, not a
    dict per forecast day and a JSON encoding of all of them on every request.
    """
    if tract is None:
        raise NotFound(OUTSIDE_MESSAGE)
    head, days = _rendered(bundle, tract)
    if horizon < 1 or horizon > len(days):
        forecast_answer(bundle, tract, horizon)  # raises the same InvalidInput
    tail = _tail(bundle, layer)
    return f'{head},"next_day":{days[0]},"forecast":[{",".join(days[:horizon])}],{tail}}}'


def batch_json(
    bundle: Bundle, tracts: Sequence[Tract | None], horizon: int, layer: str | None = None
) -> str:
    """batch_answer as JSON text (see forecast_json)."""
    return layered_batch_json([(bundle, layer, tract) for tract in tracts], horizon, bundle, layer)


def layered_batch_json(
    answers: Sequence[tuple[Bundle, str | None, Tract | None]],
    horizon: int,
    bundle: Bundle,
    layer: str | None = None,
) -> str:
    """One answer per point, each from its own layer's bundle (bundle, layer, tract); the
    versions closing the batch are those of `bundle` and `layer`."""
    results = []
    for answering, name, tract in answers:
        try:
            results.append(forecast_json(answering, tract, horizon, name))
        except TractcastError as exc:
            results.append(_compact(exc.to_dict()))
    return f'{{"results":[{",".join(results)}],{_tail(bundle, layer)}}}'


def radius_json(
    bundle: Bundle,
    hits: RadiusHits,
    *,
    center: tuple[float, float],
    radius_km: float,
    layer: str | None = None,
) -> str:
    """radius_stats as JSON text (see forecast_json), for hits already nearest first.

    A tract's row is rendered once per bundle and layer, on the first radius that meets it,
    and kept by position: a radius over thousands of tracts gathers those rows and the texts of
    their distances with array indexing and joins them once (no Python statement per tract),
    and its totals are array sums.
    """
    at = np.asarray(hits.positions, dtype=np.intp)
    distances = np.asarray(hits.distances_km, dtype=np.float64)
    if not np.isfinite(distances).all():  # one check here: rows show the floats as they are
        raise ValueError("radius distances must be finite numbers")
    table = _radius_table(bundle, hits, at)
    with_data = table.with_data[at]
    missing = at[~with_data]
    at, distances = at[with_data], distances[with_data]
    # Per row: its text up to the distance, the distance in two pieces, and the rest of the row
    # with the comma before the next one (the last row's dropped).
    pieces = np.empty((len(at), 4), dtype=object)
    pieces[:, 0] = table.heads[at]
    pieces[:, 1], pieces[:, 2] = _distance_texts(distances)
    pieces[:, 3] = table.tails[at]
    rows = pieces.ravel().tolist()
    if rows:
        rows[-1] = rows[-1][:-1]
    # The sum of the next days in list order, as a loop adding them one by one would give it.
    next_day: float = float(np.add.accumulate(table.next_day[at])[-1]) if len(at) else 0
    totals = {
        "tracts": len(at),
        "total_cases": int(table.total_cases[at].sum()),
        "new_cases": int(table.new_cases[at].sum()),
        "next_day": next_day,
    }
    opening = _compact({"center": {"lat": center[0], "lon": center[1]}, "radius_km": radius_km})
    closing = _compact({"totals": totals, "as_of": bundle.as_of})
    without_data = ",".join(table.tails[missing].tolist())
    return "".join(
        [
            f'{opening[:-1]},"tracts":[',
            *rows,
            f'],"without_data":[{without_data}],{closing[1:-1]},{_tail(bundle, layer)}}}',
        ]
    )


def _distance_texts(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each distance as JSON writes the float (its repr), in two pieces: whole km and the rest.

    Distances to the whole metre (what radius queries give) take both pieces from tables:
    repr of such a float is its km, a point and its metres without trailing zeros. Others are
    written by repr, whole in the first piece.
    """
    metres = np.rint(distances * 1000)
    if (
        (metres / 1000 == distances).all()
        and not np.signbit(distances).any()
        and metres.max(initial=0) < len(_KM_TEXTS) * 1000
    ):
        km, metre = np.divmod(metres.astype(np.int64), 1000)
        return _KM_TEXTS[km], _METRE_TEXTS[metre]
    texts = np.array(list(map(repr, distances.tolist())), dtype=object)
    return texts, np.full(len(texts), "", dtype=object)


def reused_radius_json(
    bundle: Bundle,
    finder: RadiusFinder,
    *,
    center: tuple[float, float],
    radius_km: float,
    layer: str | None = None,
) -> str:
    """radius_json of the tracts `finder` puts in the circle; the same question asked again of
    the same bundle and layer gets the text rendered the first time (a few answers are kept,
    RADIUS_ANSWERS_BYTES in all, the least recently asked dropped first)."""
    answers = bundle.memo.get("radius answers")
    if answers is None:
        answers = bundle.memo.setdefault("radius answers", _RecentAnswers(RADIUS_ANSWERS_BYTES))
    # repr: -0.0 and 0.0 are equal keys, but each answer echoes its own center
    question = (repr(center[0]), repr(center[1]), repr(radius_km), layer)
    text = answers.get((finder.layer, *question))
    if text is None:
        hits = finder.tracts_within_radius(center[0], center[1], radius_km)
        text = radius_json(bundle, hits, center=center, radius_km=radius_km, layer=layer)
        answers.put((hits.layer, *question), text)
    return text


class _RecentAnswers:
    """Rendered answers by question, up to `budget` characters, least recently asked dropped
    first; shared by a process's threads."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self._texts: OrderedDict[Any, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> str | None:
        with self._lock:
            text = self._texts.get(key)
            if text is not None:
                self._texts.move_to_end(key)
            return text

    def put(self, key: Any, text: str) -> None:
        if len(text) > self.budget:
            return
        with self._lock:
            previous = self._texts.pop(key, None)
            self.held += len(text) - (0 if previous is None else len(previous))
            self._texts[key] = text
            while self.held > self.budget:
                _, dropped = self._texts.popitem(last=False)
                self.held -= len(dropped)


class _RadiusTable:
    """The tracts of a layer, by position, rendered for radius answers of one bundle: each on
    the first radius that meets it, so a worker holds (and reads of the bundle) only the rows
    asked for, not the whole layer's."""

    def __init__(self, size: int) -> None:
        self.rendered = np.zeros(size, dtype=bool)  # set once a position's row is filled in
        # Texts: a row up to its distance ("" for a tract without forecast), and after it: counts,
        # next day, "}," (for a tract without forecast: the tract as JSON).
        self.heads = np.full(size, "", dtype=object)
        self.tails = np.full(size, "", dtype=object)
        self.with_data = np.zeros(size, dtype=bool)  # the bundle has a forecast for the tract
        self.total_cases = np.zeros(size, dtype=np.int64)  # 0 without forecast, as below
        self.new_cases = np.zeros(size, dtype=np.int64)
        self.next_day = np.zeros(size, dtype=np.float64)  # the next day's new cases

    def fill(self, bundle: Bundle, tracts: Sequence[Tract], positions: np.ndarray) -> None:
        """Render the rows of these positions not rendered yet. Two threads may render the same
        row: they write the same values, and `rendered` is set last."""
        for position in np.unique(positions[~self.rendered[positions]]).tolist():
            tract = tracts[position]
            named = {"id": tract.id, "name": tract.name}
            series = bundle.tracts.get(tract.id)
            if series is None or not series.forecast:
                self.tails[position] = _compact(named)
            else:
                first = series.forecast[0]
                counts = {"total_cases": series.total_cases, "new_cases": series.new_cases}
                self.heads[position] = _compact(named)[:-1] + ',"distance_km":'
                self.tails[position] = f",{_compact({**counts, 'next_day': _day(first)})[1:]},"
                self.with_data[position] = True
                self.total_cases[position] = series.total_cases
                self.new_cases[position] = series.new_cases
                self.next_day[position] = first.new_cases
            self.rendered[position] = True


def _radius_table(bundle: Bundle, hits: RadiusHits, positions: np.ndarray) -> _RadiusTable:
    """The hits' layer's _RadiusTable for this bundle, with the rows of `positions` rendered."""
    key = ("radius", hits.layer)
    table = bundle.memo.get(key)
    if table is None:
        table = bundle.memo.setdefault(key, _RadiusTable(len(hits.tracts)))
    table.fill(bundle, hits.tracts, positions)
    return table  # type: ignore[no-any-return]


def _rendered(bundle: Bundle, tract: Tract) -> tuple[str, list[str]]:
    """The answer's opening (tract and counts, no closing brace) and each day, as JSON.

    Looked up before the tract's series: a loaded bundle makes a series on each look-up.
    """
    key = ("forecast", tract.id, tract.name)
    rendered = bundle.memo.get(key)
    if rendered is None:
        series = _series_of(bundle, tract)
        head = _compact(
            {
                "tract": {"id": tract.id, "name": tract.name},
                "as_of": series.as_of,
                "total_cases": series.total_cases,
                "new_cases": series.new_cases,
            }
        )[:-1]
        rendered = (head, [_compact(_day(day)) for day in series.forecast])
        size = sys.getsizeof(rendered[1]) + sum(map(sys.getsizeof, (head, *rendered[1])))
        used = bundle.memo.get(MEMO_USED, 0)
        if used + size <= MEMO_BYTES:  # a race between threads may overshoot by a tract
            bundle.memo[MEMO_USED] = used + size
            bundle.memo[key] = rendered
    return rendered


def _tail(bundle: Bundle, layer: str | None = None) -> str:
    """The versions closing every answer (after the layer's name, when it is shown), without
    braces."""
    key = "tail" if layer is None else ("tail", layer)
    tail = bundle.memo.get(key)
    if tail is None:
        named = {} if layer is None else {"layer": layer}
        versions = {"model_version": bundle.model_version, "data_version": bundle.data_version}
        tail = bundle.memo[key] = _compact({**named, **versions})[1:-1]
    return tail  # type: ignore[no-any-return]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


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
    """A forecast day: lower/upper bound the 80% interval; `intervals` holds every level."""
    bands = [*day.bands, (MAIN_INTERVAL, day.lower, day.upper)]
    return {
        "date": day.date,
        "new_cases": day.new_cases,
        "lower": day.lower,
        "upper": day.upper,
        "intervals": {
            str(round(level * 100)): {"lower": lower, "upper": upper}
            for level, lower, upper in sorted(bands)
        },
    }
