"""Public answers built from a bundle in memory."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tractcast.errors import InvalidInput, NotFound
from tractcast.geo.client import LayerReplica
from tractcast.geo.index import RadiusHits, Tract, TractHit, TractIndex
from tractcast.serving import answers
from tractcast.serving.answers import (
    batch_answer,
    batch_json,
    forecast_answer,
    forecast_json,
    radius_json,
    radius_stats,
    reused_radius_json,
)
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, load_bundle, write_bundle
from tractcast.serving.dashboard import summaries_json, tract_history

MILANO = Tract("015", "Milano")
MONZA = Tract("108", "Monza e della Brianza")
NOWHERE = Tract("999", "Atlantis")

ANSWER_FIELDS = {
    "tract",
    "as_of",
    "total_cases",
    "new_cases",
    "next_day",
    "forecast",
    "model_version",
    "data_version",
}


def series(tract_id: str, total: int, new: int, base: float, horizon: int = 14) -> TractForecast:
    days = tuple(
        ForecastDay(f"2024-03-{day + 2:02d}", base + day, base + day - 1.5, base + day + 2.5)
        for day in range(horizon)
    )
    return TractForecast(tract_id, "2024-03-01", total, new, days)


@pytest.fixture
def bundle() -> Bundle:
    return Bundle(
        bundle_id="v0003-lstm@abc123",
        model_version="v0003-lstm",
        data_version="abc123",
        as_of="2024-03-01",
        created_at="2024-03-02T03:00:00+00:00",
        horizon=14,
        tracts={"015": series("015", 1000, 40, 41.0), "108": series("108", 300, 9, 10.0)},
    )


def test_forecast_answer_has_exactly_the_public_fields(bundle: Bundle) -> None:
    answer = forecast_answer(bundle, MILANO, 14)

    assert set(answer) == ANSWER_FIELDS
    assert answer["tract"] == {"id": "015", "name": "Milano"}
    assert answer["as_of"] == "2024-03-01"
    assert (answer["total_cases"], answer["new_cases"]) == (1000, 40)
    assert (answer["model_version"], answer["data_version"]) == ("v0003-lstm", "abc123")
    assert answer["next_day"] == {
        "date": "2024-03-02",
        "new_cases": 41.0,
        "lower": 39.5,
        "upper": 43.5,
        "intervals": {"80": {"lower": 39.5, "upper": 43.5}},  # this bundle has the 80% only
    }
    fields = {"date", "new_cases", "lower", "upper", "intervals"}
    assert all(set(day) == fields for day in answer["forecast"])


def test_every_interval_of_a_bundle_is_answered_with_lower_upper_the_80_percent_one(
    bundle: Bundle,
) -> None:
    day = ForecastDay("2024-03-02", 41.0, 39.5, 43.5, ((0.5, 40.0, 42.5), (0.95, 30.0, 60.0)))
    tract = bundle.tracts["015"]
    bundle.tracts["015"] = TractForecast(
        "015", tract.as_of, tract.total_cases, tract.new_cases, (day, *tract.forecast[1:])
    )
    first = forecast_answer(bundle, MILANO, 14)["next_day"]
    assert first["intervals"] == {
        "50": {"lower": 40.0, "upper": 42.5},
        "80": {"lower": 39.5, "upper": 43.5},
        "95": {"lower": 30.0, "upper": 60.0},
    }
    assert (first["lower"], first["upper"]) == (39.5, 43.5)


def test_forecast_is_sliced_to_the_horizon_and_next_day_is_its_first_day(bundle: Bundle) -> None:
    answer = forecast_answer(bundle, MILANO, 3)

    assert [day["date"] for day in answer["forecast"]] == ["2024-03-02", "2024-03-03", "2024-03-04"]
    assert answer["next_day"] == answer["forecast"][0]


def test_horizon_beyond_the_bundle_is_invalid_input(bundle: Bundle) -> None:
    with pytest.raises(InvalidInput, match="between 1 and 14"):
        forecast_answer(bundle, MILANO, 15)


def test_tract_without_data_is_not_found_with_a_clear_message(bundle: Bundle) -> None:
    with pytest.raises(NotFound, match="999 \\(Atlantis\\) has no forecast in model version"):
        forecast_answer(bundle, NOWHERE, 1)


def test_point_outside_every_tract_is_not_found(bundle: Bundle) -> None:
    with pytest.raises(NotFound, match="outside every tract"):
        forecast_answer(bundle, None, 1)


def test_batch_answer_keeps_order_and_puts_errors_inline(bundle: Bundle) -> None:
    answer = batch_answer(bundle, [MILANO, None, NOWHERE, MONZA], 2)

    results = answer["results"]
    assert [r.get("tract", {}).get("id") for r in results] == ["015", None, None, "108"]
    assert results[1]["error"] == results[2]["error"] == "not_found"
    assert all("message" in results[i] for i in (1, 2))
    assert len(results[3]["forecast"]) == 2
    assert (answer["model_version"], answer["data_version"]) == ("v0003-lstm", "abc123")


def test_radius_totals_equal_the_sums_of_the_listed_tracts(bundle: Bundle) -> None:
    hits = [TractHit(MONZA, 12.5), TractHit(MILANO, 0.0), TractHit(NOWHERE, 3.0)]

    stats = radius_stats(bundle, hits, center=(45.46, 9.19), radius_km=20.0)

    assert [t["id"] for t in stats["tracts"]] == ["015", "108"]  # nearest first
    assert stats["without_data"] == [{"id": "999", "name": "Atlantis"}]
    assert stats["totals"] == {
        "tracts": 2,
        "total_cases": sum(t["total_cases"] for t in stats["tracts"]),
        "new_cases": sum(t["new_cases"] for t in stats["tracts"]),
        "next_day": sum(t["next_day"]["new_cases"] for t in stats["tracts"]),
    }
    assert stats["totals"]["total_cases"] == 1300
    assert stats["center"] == {"lat": 45.46, "lon": 9.19}
    assert stats["radius_km"] == 20.0
    assert stats["tracts"][1]["distance_km"] == 12.5
    assert (stats["model_version"], stats["data_version"], stats["as_of"]) == (
        "v0003-lstm",
        "abc123",
        "2024-03-01",
    )


def test_radius_with_no_tracts_has_zero_totals(bundle: Bundle) -> None:
    stats = radius_stats(bundle, [], center=(0.0, 0.0), radius_km=1.0)

    assert stats["tracts"] == []
    assert stats["totals"] == {"tracts": 0, "total_cases": 0, "new_cases": 0, "next_day": 0}


@pytest.mark.parametrize("horizon", [1, 3, 14])
def test_the_json_answers_say_exactly_what_the_dict_answers_say(
    bundle: Bundle, horizon: int
) -> None:
    tracts = [MILANO, None, NOWHERE, Tract("108", 'Monza "e" della Brianza \u00e8')]

    assert json.loads(forecast_json(bundle, MILANO, horizon)) == forecast_answer(
        bundle, MILANO, horizon
    )
    assert json.loads(batch_json(bundle, tracts, horizon)) == batch_answer(bundle, tracts, horizon)
    # and again, now from what the first calls rendered and kept
    assert json.loads(batch_json(bundle, tracts, horizon)) == batch_answer(bundle, tracts, horizon)


def test_the_json_radius_says_exactly_what_the_dict_radius_says(bundle: Bundle) -> None:
    layer = [MONZA, NOWHERE, Tract("777", "Nessuno"), MILANO]
    hits = RadiusHits("layer-1", layer, [3, 1, 0], [0.0, 3.0, 12.5])
    nothing = RadiusHits("layer-1", layer, [], [])
    for found, center, radius in ((hits, (45.46, 9.19), 20.0), (nothing, (0.0, 0.0), 1.0)):
        expected = radius_stats(bundle, found.tract_hits(), center=center, radius_km=radius)
        assert json.loads(radius_json(bundle, found, center=center, radius_km=radius)) == expected
        # and again, from the rows rendered for this layer by the first call
        assert json.loads(radius_json(bundle, found, center=center, radius_km=radius)) == expected


class Finder:
    """A layer copy that counts the radius queries it answers; every circle holds its tracts."""

    def __init__(self, layer: str, tracts: list[Tract]) -> None:
        self.layer, self.tracts, self.asked = layer, tracts, 0

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> RadiusHits:
        self.asked += 1
        everywhere = list(range(len(self.tracts)))
        return RadiusHits(self.layer, self.tracts, everywhere, [radius_km / 2] * len(everywhere))


def test_a_radius_asked_again_is_answered_without_finding_its_tracts_again(
    bundle: Bundle,
) -> None:
    finder = Finder("layer-1", [MILANO, MONZA])
    hits = finder.tracts_within_radius(45.46, 9.19, 20.0)

    first = reused_radius_json(bundle, finder, center=(45.46, 9.19), radius_km=20.0)
    again = reused_radius_json(bundle, finder, center=(45.46, 9.19), radius_km=20.0)

    assert first == again == radius_json(bundle, hits, center=(45.46, 9.19), radius_km=20.0)
    assert finder.asked == 2  # once above, once for the first answer
    # another circle, another layer or another bundle are new questions
    reused_radius_json(bundle, finder, center=(45.46, 9.19), radius_km=30.0)
    reused_radius_json(bundle, Finder("layer-2", [MILANO]), center=(45.46, 9.19), radius_km=20.0)
    newer = replace(bundle, data_version="def456", memo={})
    answer = json.loads(reused_radius_json(newer, finder, center=(45.46, 9.19), radius_km=20.0))
    assert answer["data_version"] == "def456"
    assert finder.asked == 4


def test_a_reused_radius_answer_echoes_the_center_as_asked(bundle: Bundle) -> None:
    finder = Finder("layer-1", [MILANO])

    north = reused_radius_json(bundle, finder, center=(0.0, 9.0), radius_km=5.0)
    south = reused_radius_json(bundle, finder, center=(-0.0, 9.0), radius_km=5.0)

    assert '"center":{"lat":0.0,' in north and '"center":{"lat":-0.0,' in south


def test_reused_radius_answers_stay_within_their_budget(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    finder = Finder("layer-1", [MILANO, MONZA])
    size = len(
        reused_radius_json(replace(bundle, memo={}), finder, center=(1.0, 1.0), radius_km=1.0)
    )
    monkeypatch.setattr(answers, "RADIUS_ANSWERS_BYTES", 3 * size)
    for radius in (1.0, 2.0, 3.0, 4.0):
        reused_radius_json(bundle, finder, center=(1.0, 1.0), radius_km=radius)
    finder.asked = 0

    reused_radius_json(bundle, finder, center=(1.0, 1.0), radius_km=4.0)  # kept
    assert finder.asked == 0
    reused_radius_json(bundle, finder, center=(1.0, 1.0), radius_km=1.0)  # dropped: the oldest
    assert finder.asked == 1


def test_rendered_forecasts_stay_within_their_byte_budget_and_answer_alike_past_it(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = replace(bundle, memo={})
    forecast_json(one, MILANO, 14)
    monkeypatch.setattr(answers, "MEMO_BYTES", one.memo[answers.MEMO_USED])  # room for one
    first, second = (forecast_json(bundle, tract, 14) for tract in (MILANO, MONZA))

    assert bundle.memo[answers.MEMO_USED] <= answers.MEMO_BYTES
    assert [key for key in bundle.memo if key[0] == "forecast"] == [("forecast", "015", "Milano")]
    # the tract past the budget is rendered on each look-up, the same answer as the dict's
    assert json.loads(second) == forecast_answer(bundle, MONZA, 14)
    assert forecast_json(bundle, MONZA, 14) == second
    assert json.loads(first) == forecast_answer(bundle, MILANO, 14)


def test_the_json_answers_raise_the_same_errors(bundle: Bundle) -> None:
    with pytest.raises(InvalidInput, match="between 1 and 14"):
        forecast_json(bundle, MILANO, 15)
    with pytest.raises(NotFound, match="outside every tract"):
        forecast_json(bundle, None, 1)


def varied_bundle(tract_ids: list[str]) -> Bundle:
    """Tracts with numbers of their own: some with 50% and 95% intervals, some with history,
    rounded like serving.build rounds them, two as_of days and two runs of forecast dates."""
    rng = np.random.default_rng(7)
    tracts = {}
    for n, tract_id in enumerate(tract_ids):
        level = float(rng.gamma(2.0, 40.0))
        first = 2 if n % 5 else 1
        days = tuple(
            ForecastDay(
                f"2024-03-{first + d:02d}",
                round(level * (1 + 0.02 * d), 2),
                round(level * 0.7, 2),
                round(level * (1.3 + 0.03 * d), 2),
                ((0.5, round(level * 0.85, 2), round(level * 1.15, 2)),
                 (0.95, round(level * 0.5, 2), round(level * 1.6, 2))) if n % 3 else (),
            )
            for d in range(14)
        )  # fmt: skip
        history = tuple(int(v) for v in rng.poisson(level, n % 40))
        as_of = f"2024-03-{first - 1:02d}" if first > 1 else "2024-02-29"
        tracts[tract_id] = TractForecast(tract_id, as_of, int(level * 300), n % 7, days, history)
    return Bundle(
        bundle_id="v0003-lstm@abc123",
        model_version="v0003-lstm",
        data_version="abc123",
        as_of="2024-03-01",
        created_at="2024-03-02T03:00:00+00:00",
        horizon=14,
        tracts=tracts,
    )


def test_a_bundle_answers_the_same_written_in_either_format(tmp_path: Path) -> None:
    layer = [Tract(f"T{n:03d}", f"Tract {n}") for n in range(300)] + [NOWHERE]
    bundle = varied_bundle([tract.id for tract in layer[:-1]])
    write_bundle(bundle, tmp_path / "one", bundle_format=1)
    write_bundle(bundle, tmp_path / "two", bundle_format=2)
    one, two = load_bundle(tmp_path / "one"), load_bundle(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "bundle.json").read_text())["format"] == 2

    for tract in layer[:-1]:
        for horizon in (1, 7, 14):
            assert forecast_json(one, tract, horizon) == forecast_json(two, tract, horizon)
            assert forecast_answer(one, tract, horizon) == forecast_answer(two, tract, horizon)
        assert tract_history(one, tract.id) == tract_history(two, tract.id)
    assert batch_json(one, layer, 14) == batch_json(two, layer, 14)
    everywhere = list(range(len(layer)))
    hits = RadiusHits("layer-1", layer, everywhere, [n / 10 for n in everywhere])
    assert radius_json(one, hits, center=(45.0, 9.0), radius_km=50.0) == radius_json(
        two, hits, center=(45.0, 9.0), radius_km=50.0
    )
    assert summaries_json(one) == summaries_json(two)


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def test_radius_answers_over_a_dense_layer_are_byte_for_byte_the_plain_encoding(
    dense_city: TractIndex,
) -> None:
    # The API answers from its copy of geo's layer, rendered from rows kept per tract; the plain
    # way: the geo index's hits, radius_stats' dict, json.dumps. Random centres, in the crowded
    # centre and around it, some tracts without a forecast.
    index = dense_city
    replica = LayerReplica()
    replica.replace(json.loads(json.dumps(index.replica())), None)
    assert replica.copy is not None
    ids = [tract.id for tract in index.tracts]
    bundle = varied_bundle([tract_id for n, tract_id in enumerate(ids) if n % 11])
    rng = np.random.default_rng(31)
    listed = 0
    for _ in range(40):
        lat, lon = float(rng.normal(45.46, 0.2)), float(rng.normal(9.19, 0.3))
        radius = float(rng.choice([0.3, 2.0, 10.0, 40.0]))
        hits = replica.copy.tracts_within_radius(lat, lon, radius)
        found = index.tracts_within_radius(lat, lon, radius)
        expected = radius_stats(bundle, found, center=(lat, lon), radius_km=radius)

        assert radius_json(bundle, hits, center=(lat, lon), radius_km=radius) == compact(expected)
        listed += len(expected["tracts"])
    assert listed > 5_000


def test_every_distance_is_written_as_json_writes_its_float(bundle: Bundle) -> None:
    # Distances to the metre come from tables of km and metres; any other float is written by
    # repr, as json.dumps writes it.
    layer = [MILANO]
    rng = np.random.default_rng(37)
    metres = np.concatenate([np.arange(30_000), rng.integers(0, 1_000_000, 30_000)])
    odd = [1 / 3, 0.0005, 1e-9, 999.9995, 1000.0, 4321.125, 123456.789, 2.5e-7]
    for distances in ((metres / 1000).tolist(), odd, [0.001, *odd], [-0.0, 2.0]):
        hits = RadiusHits("layer-1", layer, [0] * len(distances), distances)
        expected = radius_stats(bundle, hits.tract_hits(), center=(45.0, 9.0), radius_km=50.0)
        # radius_stats sorts the hits; radius_json takes them as given, nearest first
        in_order = RadiusHits("layer-1", layer, [0] * len(distances), sorted(distances))
        text = radius_json(bundle, in_order, center=(45.0, 9.0), radius_km=50.0)
        assert text == compact(expected)
