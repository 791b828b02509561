"""What every service tells operators: one request id through api and geo, JSON logs, /metrics."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.faults.processes import serving_in_thread

from services.api.app import create_app as create_api
from services.common import gunicorn_conf
from services.common.warmup import on_warm_up, warm_up
from services.geo.app import create_app as create_geo
from services.registry.app import create_app as create_registry
from services.retrainer.app import create_app as create_retrainer
from tractcast.geo.index import TractIndex
from tractcast.logs import JsonFormatter, logging_config
from tractcast.registry.registry import Registry
from tractcast.registry.store import RegistryReader
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, write_bundle
from tractcast.serving.holder import BundleHolder
from tractcast.settings import Settings

MILAN = {"lat": "45.4642", "lon": "9.19"}


@pytest.fixture(scope="module")
def provinces(italy_provinces: Path) -> TractIndex:
    return TractIndex.from_file(italy_provinces)


@pytest.fixture(scope="module")
def near_a_border(provinces: TractIndex) -> dict[str, str]:
    """A point of Milano a few metres from its border with Monza: the API's copy of geo's grid
    cannot answer it, so the API asks geo."""
    milano, monza = provinces.geometry("015"), provinces.geometry("108")
    on_border = milano.boundary.intersection(monza.boundary).interpolate(0.5, normalized=True)
    point = milano.intersection(on_border.buffer(0.0003)).representative_point()
    assert provinces.lookup(point.y, point.x) == (provinces.tract("015"), None)  # a border cell
    return {"lat": repr(point.y), "lon": repr(point.x)}


@pytest.fixture(scope="module")
def geo_url(italy_provinces: Path, provinces: TractIndex) -> Iterator[str]:
    """The real geo app over the Italian provinces, on a loopback port."""
    app = create_geo(Settings(tracts=str(italy_provinces)), provinces)
    with serving_in_thread(app) as url:
        yield url


def milano_bundle(store: Path) -> None:
    days = tuple(ForecastDay(f"2023-02-{d + 1:02d}", 9.0, 8.0, 10.0) for d in range(14))
    bundle = Bundle(
        bundle_id="v0001-lstm@d1",
        model_version="v0001-lstm",
        data_version="d1",
        as_of="2023-01-31",
        created_at="2023-02-01T03:00:00+00:00",
        horizon=14,
        tracts={"015": TractForecast("015", "2023-01-31", 1000, 9, days)},
    )
    write_bundle(bundle, store / "bundles" / bundle.bundle_id)
    (store / "current").symlink_to(Path("bundles") / bundle.bundle_id)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "tractcast.access"]


def test_one_request_id_reaches_the_geo_log_through_the_api(
    tmp_path: Path, geo_url: str, near_a_border: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    milano_bundle(tmp_path)
    api = create_api(
        Settings(store=tmp_path, geo_url=geo_url), holder=BundleHolder(RegistryReader(tmp_path))
    )
    caplog.set_level(logging.INFO, logger="tractcast.access")

    response = api.test_client().get(
        "/v1/forecast", query_string=near_a_border, headers={"X-Request-ID": "trace-me-1"}
    )

    assert response.status_code == 200 and response.headers["X-Request-ID"] == "trace-me-1"
    assert response.json["tract"]["id"] == "015"
    lines = {(line["service"], line["path"]): line for line in access_lines(caplog)}
    assert lines[("api", "/v1/forecast")]["request_id"] == "trace-me-1"
    assert lines[("geo", "/v1/tracts/lookup")]["request_id"] == "trace-me-1"


def test_a_request_without_an_id_gets_one_that_geo_logs_too(
    tmp_path: Path, geo_url: str, near_a_border: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    milano_bundle(tmp_path)
    api = create_api(
        Settings(store=tmp_path, geo_url=geo_url), holder=BundleHolder(RegistryReader(tmp_path))
    )
    caplog.set_level(logging.INFO, logger="tractcast.access")

    response = api.test_client().get("/v1/forecast", query_string=near_a_border)

    minted = response.headers["X-Request-ID"]
    lines = {(line["service"], line["path"]): line for line in access_lines(caplog)}
    assert lines[("api", "/v1/forecast")]["request_id"] == minted
    assert lines[("geo", "/v1/tracts/lookup")]["request_id"] == minted


def test_log_lines_are_one_json_object_each_with_the_fields_operators_search() -> None:
    record = logging.makeLogRecord(
        {
            "name": "tractcast.access",
            "levelname": "INFO",
            "msg": "GET /healthz 200",
            "service": "geo",
            "request_id": "abc",
            "fields": {"method": "GET", "path": "/healthz", "status": 200, "duration_ms": 0.4},
        }
    )
    line = JsonFormatter().format(record)

    assert "\n" not in line
    assert json.loads(line) == {
        "time": json.loads(line)["time"],
        "level": "info",
        "service": "geo",
        "request_id": "abc",
        "logger": "tractcast.access",
        "message": "GET /healthz 200",
        "method": "GET",
        "path": "/healthz",
        "status": 200,
        "duration_ms": 0.4,
    }


def test_an_exception_is_logged_with_its_traceback_in_the_same_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["error"]


def test_the_gunicorn_logging_config_is_valid_and_json() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logging.config.dictConfig(logging_config())  # what gunicorn does with logconfig_dict
    try:
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_registry_metrics_count_runs_promotions_and_rollbacks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(store=tmp_path)
    metadata = Registry.open(settings).metadata
    for version in ("v0001-lstm", "v0002-lstm", "v0003-lstm"):
        metadata.record_event("registered", version, reason="trained")
    metadata.record_event("promoted", "v0001-lstm", reason="first")
    metadata.record_event("promoted", "v0002-lstm", reason="better")
    metadata.record_event("rejected", "v0003-lstm", reason="worse")
    metadata.record_event("rolled_back", "v0001-lstm", from_version="v0002-lstm", reason="admin")
    metadata.close()

    text = create_registry(settings).test_client().get("/metrics").get_data(as_text=True)

    assert "tractcast_training_runs_total 3.0" in text
    assert "tractcast_promotions_total 2.0" in text
    assert "tractcast_rollbacks_total 1.0" in text
    assert "tractcast_rejected_candidates_total 1.0" in text
    assert 'tractcast_state_up{source="registry"} 1.0' in text


def test_registry_metrics_still_answer_when_the_database_does_not(tmp_path: Path) -> None:
    settings = Settings(store=tmp_path, database_url="postgresql+psycopg2://nobody@127.0.0.1:9/x")

    response = create_registry(settings).test_client().get("/metrics")

    assert response.status_code == 200
    assert 'tractcast_state_up{source="registry"} 0.0' in response.get_data(as_text=True)


def test_the_retrainer_exposes_metrics_too(tmp_path: Path) -> None:
    client = create_retrainer(Settings(store=tmp_path)).test_client()
    client.get("/healthz")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'endpoint="/healthz",method="GET",service="retrainer",status="200"' in text


def test_gunicorn_starts_the_metrics_directory_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "metrics" / "api"
    directory.mkdir(parents=True)
    (directory / "counter_123.db").write_bytes(b"left over from the last run")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))

    gunicorn_conf.on_starting(None)

    assert directory.is_dir() and not any(directory.iterdir())


def test_a_worker_warms_up_before_taking_requests_and_survives_a_failed_step(
    italy_provinces: Path, tmp_path: Path
) -> None:
    geo = create_geo(Settings(tracts=str(italy_provinces)))
    calls: list[str] = []
    on_warm_up(geo, lambda: calls.append("ran"))
    on_warm_up(geo, lambda: 1 / 0)

    gunicorn_conf.post_worker_init(SimpleNamespace(wsgi=geo))

    assert calls == ["ran"]
    assert geo.test_client().get("/readyz").json["tracts"] == 107
    broken = create_geo(Settings(tracts=str(tmp_path / "absent.geojson")))
    warm_up(broken)  # logged, not raised: the worker still starts and says it is not ready
    assert broken.test_client().get("/readyz").status_code == 503
