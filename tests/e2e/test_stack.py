"""The whole system as real processes (gunicorn workers, nginx) over a slice of the Italy data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.faults.processes import loopback_ports, run_cli, stack_through_nginx, write_italy_slice

from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "e2e-admin-token"
MILAN = {"lat": 45.4642, "lon": 9.19}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, italy_cases: Path, italy_provinces: Path):
    base = tmp_path_factory.mktemp("stack")
    cases = base / "italy-slice.csv.gz"
    write_italy_slice(italy_cases, cases, "2022-06-01", "2023-01-31")
    return Settings(
        data_source=str(cases),
        tracts=str(italy_provinces),
        store=base / "store",
        run_dir=base / "run",
        demo_dir=base / "demo",
        admin_token=TOKEN,
        **loopback_ports(),
        epochs=3,
        workers=1,
    )


@pytest.fixture(scope="module")
def first_training(settings: Settings) -> dict:
    return run_cli(settings, "train")


@pytest.fixture(scope="module")
def url(settings: Settings, first_training: dict) -> Iterator[str]:
    with stack_through_nginx(settings) as public:
        yield public


def test_point_in_milan_answers_milano_with_a_fourteen_day_forecast(url, first_training):
    answer = requests.get(f"{url}/v1/forecast", params=MILAN, timeout=5).json()
    assert answer["tract"] == {"id": "015", "name": "Milano"}
    assert answer["as_of"] == "2023-01-31"
    assert answer["model_version"] == first_training["champion"]
    assert answer["data_version"] == first_training["data_version"]
    assert len(answer["forecast"]) == 14
    assert answer["next_day"] == answer["forecast"][0]
    assert answer["forecast"][0]["date"] == "2023-02-01"
    day = answer["forecast"][0]
    assert 0 <= day["lower"] <= day["new_cases"] <= day["upper"]
    assert answer["total_cases"] > 1_000_000  # Milano's cumulative count in early 2023


def test_horizon_limits_the_forecast(url):
    answer = requests.get(f"{url}/v1/forecast", params={**MILAN, "horizon": 3}, timeout=5).json()
    assert len(answer["forecast"]) == 3


def test_batch_forecast_answers_each_point(url):
    points = [MILAN, {"lat": 41.9028, "lon": 12.4964}, {"lat": 40.0, "lon": 12.0}]
    body = requests.post(f"{url}/v1/forecast", json={"points": points}, timeout=5).json()
    results = body["results"]
    assert results[0]["tract"]["id"] == "015"
    assert results[1]["tract"]["id"] == "058"  # Roma
    assert results[2]["error"] == "not_found"


def test_radius_lists_milan_and_its_neighbours_with_totals_that_add_up(url):
    params = {**MILAN, "radius_km": 50}
    stats = requests.get(f"{url}/v1/stats/radius", params=params, timeout=5).json()
    ids = [t["id"] for t in stats["tracts"]]
    assert {"015", "108", "098", "018"} <= set(ids)  # Milano, Monza e Brianza, Lodi, Pavia
    assert ids[0] == "015" and stats["tracts"][0]["distance_km"] == 0
    assert stats["totals"]["total_cases"] == sum(t["total_cases"] for t in stats["tracts"])
    assert stats["totals"]["new_cases"] == sum(t["new_cases"] for t in stats["tracts"])


def test_point_in_the_sea_is_404_json(url):
    response = requests.get(f"{url}/v1/forecast", params={"lat": 40.0, "lon": 12.0}, timeout=5)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_latitude_100_is_400_json(url):
    response = requests.get(f"{url}/v1/forecast", params={"lat": 100, "lon": 9.19}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"


def test_lookup_and_contract_endpoints_answer_through_nginx(url):
    lookup = requests.get(f"{url}/v1/tracts/lookup", params=MILAN, timeout=5).json()
    assert lookup["tract"]["id"] == "015"
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    paths = requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]
    assert {"/v1/forecast", "/v1/stats/radius", "/v1/models/current"} <= set(paths)
    missing = requests.get(f"{url}/v1/nothing-here", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_the_copy_of_the_layer_geo_gives_the_api_is_not_public(url, settings):
    through_nginx = requests.get(f"{url}/v1/tracts/replica", timeout=5)
    assert through_nginx.status_code == 404 and through_nginx.json()["error"] == "not_found"
    geo = requests.get(f"http://127.0.0.1:{settings.geo_port}/v1/tracts/replica", timeout=30)
    assert geo.status_code == 200 and geo.json()["outlines"]["scale"] == 10_000_000


def test_admin_endpoints_need_the_bearer_token(url):
    assert requests.post(f"{url}/v1/admin/rollback", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.post(f"{url}/v1/admin/rollback", headers=wrong, timeout=5).status_code == 403


def wait_for_version(url: str, version: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(f"{url}/v1/forecast", params=MILAN, timeout=5).json()
        if answer.get("model_version") == version or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_first_training_registers_every_candidate_and_the_best_serves(url, first_training):
    assert set(first_training["versions"]) == {
        "lstm", "persistence", "seasonal_naive", "moving_average", "ensemble"
    }  # fmt: skip
    assert first_training["promoted"] == first_training["champion"]
    current = requests.get(f"{url}/v1/models/current", timeout=5).json()
    assert current["version"] == first_training["champion"]
    assert current["family"] == first_training["champion"].split("-", 1)[1]
    assert {
        "mae", "wape", "rmse", "wis", "relative_mae", "relative_wis", "robust_relative_wis",
        "coverage", "coverage_50", "coverage_95", "per_horizon", "per_origin",
    } <= set(current["metrics"])  # fmt: skip
    assert "live_skill" in current  # no actuals after the forecast yet: nothing scored
    assert current["live_skill"]["points"] == 0
    day = requests.get(f"{url}/v1/forecast", params=MILAN, timeout=5).json()["next_day"]
    assert day["intervals"]["80"] == {"lower": day["lower"], "upper": day["upper"]}
    assert day["intervals"]["50"]["lower"] >= day["intervals"]["95"]["lower"]


def test_a_rejected_candidate_leaves_the_champion_and_rollback_restores_it(
    url, settings, first_training
):
    second = run_cli(settings, "train")
    first_versions, second_versions = (
        set(r["versions"].values()) for r in (first_training, second)
    )
    assert first_versions.isdisjoint(second_versions)
    models = requests.get(f"{url}/v1/models", timeout=5).json()
    assert {v["version"] for v in models["versions"]} == first_versions | second_versions

    # same data, same configuration: the gate keeps the champion and the registry says why
    champion = first_training["champion"]
    assert second["promoted"] is None and second["champion"] == champion
    assert requests.get(f"{url}/v1/models/current", timeout=5).json()["version"] == champion
    assert wait_for_version(url, champion)["model_version"] == champion
    events = requests.get(f"{url}/v1/events", timeout=5).json()["events"]
    rejected = [e for e in events if e["kind"] == "rejected"]
    assert rejected[0]["version"] == second["candidate"]
    assert rejected[0]["from_version"] == champion
    assert "not significantly better than champion" in rejected[0]["reason"]
    assert "p = " in rejected[0]["reason"]

    # an admin serves the newer version anyway, then rolls back: no restart anywhere
    auth = {"Authorization": f"Bearer {TOKEN}"}
    newer = second["candidate"]
    response = requests.post(
        f"{url}/v1/admin/promote", headers=auth, json={"version": newer}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert wait_for_version(url, newer)["model_version"] == newer

    response = requests.post(f"{url}/v1/admin/rollback", headers=auth, json={}, timeout=10)
    assert response.status_code == 200, response.text
    current = requests.get(f"{url}/v1/models/current", timeout=5).json()
    assert current["version"] == champion
    assert wait_for_version(url, champion)["model_version"] == champion
