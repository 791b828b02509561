"""The registry service over a real store and SQLite metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from services.registry.app import create_app
from tractcast.registry.store import LocalModelStore
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, bundle_id_for
from tractcast.settings import Settings
from tractcast.tract_layers import tract_layers

TOKEN = "s3cret-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def tiny_bundle(version: str, data_version: str = "d1") -> Bundle:
    days = tuple(ForecastDay(f"2024-03-{d:02d}", 3.0, 1.0, 5.0) for d in range(2, 16))
    return Bundle(
        bundle_id=bundle_id_for(version, data_version),
        model_version=version,
        data_version=data_version,
        as_of="2024-03-01",
        created_at="2024-03-01T06:00:00+00:00",
        horizon=14,
        tracts={t: TractForecast(t, "2024-03-01", 40, 2, days) for t in ("A", "B", "C")},
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store=tmp_path / "store", admin_token=TOKEN)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["tractcast.registry"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def add_version(settings: Settings) -> Callable[..., str]:
    """Create a version (with a bundle unless told not to) straight in the store."""
    store = LocalModelStore(settings.store)

    def add(family: str = "lstm", bundle: bool = True) -> str:
        version = store.create_version(
            family, lambda d: None, metrics={"mae": 1.5}, manifest={"data_version": "d1"}
        ).version
        if bundle:
            store.add_bundle(tiny_bundle(version))
        return version

    return add


def test_app_builds_without_touching_the_store(settings: Settings) -> None:
    create_app(settings)
    assert not settings.store.exists()


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "current": None}


def test_readyz_is_503_when_the_database_does_not_answer(tmp_path: Path) -> None:
    settings = Settings(store=tmp_path / "store", database_url="sqlite:////proc/nope/meta.db")
    app = create_app(settings)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
    app.extensions["tractcast.registry"].close()


def test_models_list_versions_and_which_serves(
    client: FlaskClient, add_version: Callable[..., str]
) -> None:
    assert client.get("/v1/models").get_json() == {"versions": [], "current": None}
    first, second = add_version(), add_version("persistence")
    client.post("/v1/admin/promote", json={"version": first}, headers=ADMIN)
    body = client.get("/v1/models").get_json()
    assert body["current"] == first
    assert [(v["version"], v["serving"]) for v in body["versions"]] == [
        (first, True),
        (second, False),
    ]
    assert set(body["versions"][0]) == {
        "version",
        "family",
        "created_at",
        "data_version",
        "metrics",
        "serving",
    }


def test_current_model_is_404_json_when_nothing_serves(client: FlaskClient) -> None:
    response = client.get("/v1/models/current")
    assert response.status_code == 404
    assert response.get_json() == {"error": "not_found", "message": "no model is serving yet"}


def test_model_by_version(client: FlaskClient, add_version: Callable[..., str]) -> None:
    version = add_version()
    body = client.get(f"/v1/models/{version}").get_json()
    assert body["version"] == version and body["metrics"] == {"mae": 1.5}
    assert body["manifest"]["data_version"] == "d1" and body["serving"] is False


def test_malformed_version_is_400_and_unknown_is_404(client: FlaskClient) -> None:
    bad = client.get("/v1/models/v1-x..")
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_input"
    missing = client.get("/v1/models/v0404-lstm")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_admin_needs_a_bearer_token(client: FlaskClient, add_version: Callable[..., str]) -> None:
    version = add_version()
    for path, body in (("/v1/admin/promote", {"version": version}), ("/v1/admin/rollback", {})):
        none = client.post(path, json=body)
        assert none.status_code == 401 and none.get_json()["error"] == "unauthorized"
        wrong = client.post(path, json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.get_json()["error"] == "forbidden"
    assert client.get("/v1/models").get_json()["current"] is None


def test_promote_then_rollback(client: FlaskClient, add_version: Callable[..., str]) -> None:
    first, second = add_version(), add_version()
    promoted = client.post("/v1/admin/promote", json={"version": first}, headers=ADMIN)
    assert promoted.status_code == 200
    client.post("/v1/admin/promote", json={"version": second}, headers=ADMIN)
    body = client.get("/v1/models/current").get_json()
    assert body["version"] == second and body["bundle_id"] == f"{second}@d1"
    assert body["as_of"] == "2024-03-01"

    rolled = client.post("/v1/admin/rollback", headers=ADMIN)
    assert rolled.status_code == 200
    body = rolled.get_json()
    assert body["event"]["kind"] == "rolled_back"
    assert (body["event"]["version"], body["event"]["from_version"]) == (first, second)
    assert body["current"]["version"] == first

    events = client.get("/v1/events").get_json()["events"]
    assert [e["kind"] for e in events] == ["rolled_back", "promoted", "promoted"]


def test_rollback_to_a_named_version(client: FlaskClient, add_version: Callable[..., str]) -> None:
    first, second, third = add_version(), add_version(), add_version()
    for version in (first, second, third):
        client.post("/v1/admin/promote", json={"version": version}, headers=ADMIN)
    response = client.post("/v1/admin/rollback", json={"to_version": first}, headers=ADMIN)
    assert response.get_json()["current"]["version"] == first


def test_admin_errors_are_json(client: FlaskClient, add_version: Callable[..., str]) -> None:
    unknown = client.post("/v1/admin/promote", json={"version": "v0099-lstm"}, headers=ADMIN)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
    no_bundle = client.post(
        "/v1/admin/promote", json={"version": add_version(bundle=False)}, headers=ADMIN
    )
    assert no_bundle.status_code == 409 and no_bundle.get_json()["error"] == "conflict"
    missing = client.post("/v1/admin/promote", json={}, headers=ADMIN)
    assert missing.status_code == 400 and "'version'" in missing.get_json()["message"]
    not_json = client.post("/v1/admin/promote", data="version=x", headers=ADMIN)
    assert not_json.status_code == 415
    nothing = client.post("/v1/admin/rollback", json={}, headers=ADMIN)
    assert nothing.status_code == 409 and nothing.get_json()["error"] == "conflict"


def test_unknown_route_and_method_are_json(client: FlaskClient) -> None:
    assert client.get("/v1/nope").get_json()["error"] == "not_found"
    wrong = client.get("/v1/admin/promote")
    assert wrong.status_code == 405 and wrong.get_json()["error"] == "method_not_allowed"


def test_current_model_and_metrics_report_live_skill_against_the_seasonal_naive(
    client: FlaskClient, settings: Settings
) -> None:
    store = LocalModelStore(settings.store)
    version = store.create_version(
        "ensemble", lambda d: None, metrics={"mae": 1.5}, manifest={"data_version": "d1"}
    ).version
    store.add_bundle(tiny_bundle(version))  # forecasts 3.0 a day for 2024-03-02 .. 03-15
    # the newer release's bundle holds the actuals: 4 a day from 2024-02-10 to 2024-03-20, and
    # 10 on 2024-02-24 .. 03-01 (the week the naive repeats): the naive misses by 6, the model by 1
    days = pd.date_range("2024-02-10", "2024-03-20")
    history = tuple(10 if pd.Timestamp("2024-02-24") <= d <= pd.Timestamp("2024-03-01") else 4
                    for d in days)  # fmt: skip
    later = tuple(ForecastDay(f"2024-03-{d:02d}", 4.0, 3.0, 5.0) for d in range(21, 32))
    later += tuple(ForecastDay(f"2024-04-0{d}", 4.0, 3.0, 5.0) for d in range(1, 4))
    newer = Bundle(
        bundle_id_for(version, "d2"), version, "d2", "2024-03-20", "2024-03-20T06:00:00+00:00",
        14, {t: TractForecast(t, "2024-03-20", 90, 4, later, history) for t in ("A", "B", "C")},
    )  # fmt: skip
    store.add_bundle(newer)
    promoted = client.post("/v1/admin/promote", json={"version": version}, headers=ADMIN)
    assert promoted.status_code == 200
    skill = client.get("/v1/models/current").get_json()["live_skill"]
    assert skill["version"] == version and skill["points"] == 3 * 14
    assert skill["mae"] == 1.0 and skill["naive_mae"] == 6.0
    assert skill["relative_mae"] == pytest.approx(1 / 6, abs=1e-3)
    assert [entry["horizon"] for entry in skill["per_horizon"]] == list(range(1, 15))
    text = client.get("/metrics").get_data(as_text=True)
    assert f'tractcast_live_relative_mae{{version="{version}"}} 0.1667' in text
    assert f'tractcast_live_relative_mae_by_horizon{{horizon="1",version="{version}"}}' in text


def test_without_a_layers_file_model_answers_name_no_layer(
    client: FlaskClient, add_version: Callable[..., str]
) -> None:
    version = add_version()
    promoted = client.post("/v1/admin/promote", json={"version": version}, headers=ADMIN)
    assert promoted.status_code == 200 and "layer" not in promoted.get_json()
    for path in ("/v1/models", "/v1/models/current", f"/v1/models/{version}", "/v1/events"):
        assert "layer" not in client.get(path).get_json()


def test_model_answers_say_which_layer_they_describe(tmp_path: Path) -> None:
    (tmp_path / "layers.toml").write_text(
        '[[layers]]\nname = "municipalities"\n[[layers]]\nname = "provinces"\n'
    )
    settings = Settings(store=tmp_path / "store", layers=str(tmp_path / "layers.toml"))
    store = LocalModelStore(tract_layers(settings)[1].settings.store)  # the provinces' own
    version = store.create_version(
        "lstm", lambda d: None, metrics={"mae": 1.5}, manifest={"data_version": "d1"}
    ).version
    store.add_bundle(tiny_bundle(version))
    app = create_app(settings.with_(admin_token=TOKEN))
    client = app.test_client()
    promoted = client.post(
        "/v1/admin/promote", json={"version": version, "layer": "provinces"}, headers=ADMIN
    )
    assert promoted.status_code == 200
    try:
        listed = client.get("/v1/models", query_string={"layer": "provinces"}).get_json()
        assert (listed["layer"], listed["current"]) == ("provinces", version)
        first = client.get("/v1/models").get_json()  # default: the first layer
        assert (first["layer"], first["versions"]) == ("municipalities", [])
        current = client.get("/v1/models/current?layer=provinces").get_json()
        assert (current["layer"], current["version"]) == ("provinces", version)
        described = client.get(f"/v1/models/{version}?layer=provinces").get_json()
        assert (described["layer"], described["serving"]) == ("provinces", True)
        unknown = client.get("/v1/models?layer=regions")
        assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
    finally:
        for registry in app.extensions["tractcast.registries"].values():
            registry.close()


def test_events_and_admin_answers_say_which_layer_they_concern(tmp_path: Path) -> None:
    (tmp_path / "layers.toml").write_text(
        '[[layers]]\nname = "municipalities"\n[[layers]]\nname = "provinces"\n'
    )
    settings = Settings(store=tmp_path / "store", layers=str(tmp_path / "layers.toml"))
    store = LocalModelStore(tract_layers(settings)[1].settings.store)  # the provinces' own
    older, newer = (
        store.create_version(
            "lstm", lambda d: None, metrics={"mae": 1.5}, manifest={"data_version": "d1"}
        ).version
        for _ in range(2)
    )
    for version in (older, newer):
        store.add_bundle(tiny_bundle(version))
    app = create_app(settings.with_(admin_token=TOKEN))
    client = app.test_client()
    try:
        for version in (older, newer):
            promoted = client.post(
                "/v1/admin/promote", json={"version": version, "layer": "provinces"}, headers=ADMIN
            ).get_json()
            assert (promoted["layer"], promoted["current"]["version"]) == ("provinces", version)
        rolled = client.post(
            "/v1/admin/rollback", json={"layer": "provinces"}, headers=ADMIN
        ).get_json()
        assert (rolled["layer"], rolled["event"]["version"]) == ("provinces", older)

        events = client.get("/v1/events", query_string={"layer": "provinces"}).get_json()
        assert events["layer"] == "provinces"
        assert [e["kind"] for e in events["events"]] == ["rolled_back", "promoted", "promoted"]
        first = client.get("/v1/events").get_json()  # default: the first layer, untouched
        assert (first["layer"], first["events"]) == ("municipalities", [])
        unknown = client.get("/v1/events?layer=regions")
        assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
        malformed = client.get("/v1/events?layer=A%20B")
        assert malformed.status_code == 400 and malformed.get_json()["error"] == "invalid_input"
        nowhere = client.post("/v1/admin/rollback", json={"layer": "regions"}, headers=ADMIN)
        assert nowhere.status_code == 404

        # /metrics: one sample per layer, labelled; the champion only where there is one
        samples = [
            sample
            for family in text_string_to_metric_families(client.get("/metrics").get_data(True))
            for sample in family.samples
        ]

        def per_layer(name: str) -> dict[str, float]:
            return {s.labels["layer"]: s.value for s in samples if s.name == name}

        assert per_layer("tractcast_promotions_total") == {"provinces": 2, "municipalities": 0}
        assert per_layer("tractcast_rollbacks_total") == {"provinces": 1, "municipalities": 0}
        champion = [s.labels for s in samples if s.name == "tractcast_champion_info"]
        assert champion == [{"version": older, "data_version": "d1", "layer": "provinces"}]
    finally:
        for registry in app.extensions["tractcast.registries"].values():
            registry.close()
