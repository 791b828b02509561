"""The whole stack through nginx while its backends die: forecasts keep being answered.

The stack runs on a private Redis, on the machine's PostgreSQL through a relay the test can
kill (the real server is never touched), and with a real MLflow server. Each is killed -9 in
turn while the API serves, then the registry and the whole retrainer. Geo is the one backend a
forecast can need: while it is down the API answers every radius and every point its copy of
geo's layer can, 503 JSON for the points on a border, and it answers those again by itself
once geo is back, with no restart.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tests.faults.processes import (
    Server,
    loopback_ports,
    mlflow_server,
    redis_server,
    scratch_database,
    tcp_proxy,
    wait_until,
)

from tractcast.data.demo import BOUNDS
from tractcast.geo.cells import BORDER, CellAnswers
from tractcast.geo.outlines import Outlines
from tractcast.runner import ROOT, Stack, child_env, find_nginx, start_stack, wait_ready
from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
TOKEN = "outage-admin-token"
DEMO_RADIUS = {"lat": 44.5, "lon": 10.75, "radius_km": 20}  # the middle of the demo tracts


@dataclass
class Running:
    settings: Settings
    stack: Stack
    url: str
    redis: Server
    database: Server  # the relay to PostgreSQL
    mlflow: Server
    rng: random.Random

    def fresh_point(self) -> dict[str, float]:
        """A point inside the demo tracts that no one asked about before (no cached cell)."""
        south, north, west, east = BOUNDS
        return {
            "lat": round(self.rng.uniform(south + 0.05, north - 0.05), 6),
            "lon": round(self.rng.uniform(west + 0.05, east - 0.05), 6),
        }

    def forecasts(self, count: int = 8) -> list[int]:
        return [
            requests.get(
                f"{self.url}/v1/forecast", params=self.fresh_point(), timeout=10
            ).status_code
            for _ in range(count)
        ]

    def kill_stack_process(self, name: str) -> None:
        proc = self.stack.processes[name]
        _killpg(proc.pid)
        proc.wait(timeout=15)


def forecast_of(running: Running, point: dict[str, float]) -> tuple[int, str | None]:
    """Status, and the tract answered, of a forecast for one point."""
    response = requests.get(f"{running.url}/v1/forecast", params=point, timeout=10)
    return response.status_code, response.json().get("tract", {}).get("id")


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the runner started it in a session of its own
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def faults_database() -> Iterator[str]:
    with scratch_database("tractcast_faults") as name:
        yield name


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, faults_database: str) -> Iterator[Running]:
    base = tmp_path_factory.mktemp("outages")
    servers: list[Server] = []
    stack: Stack | None = None
    try:
        redis = redis_server(base / "redis")
        servers.append(redis)
        relay = tcp_proxy(5432, base)
        servers.append(relay)
        mlflow = mlflow_server(base / "mlflow")
        servers.append(mlflow)
        settings = Settings(
            store=base / "store",
            demo_dir=base / "demo",
            run_dir=base / "run",
            broker_url=f"redis://127.0.0.1:{redis.port}/0",
            database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{relay.port}/{faults_database}",
            mlflow_uri=f"http://127.0.0.1:{mlflow.port}",
            admin_token=TOKEN,
            **loopback_ports(),
            epochs=1,
            backtest_origins=1,
            workers=1,
            rate_limit="1000r/s",  # these requests are about outages, not about nginx's limits
        )
        trained = subprocess.run(
            [sys.executable, "-m", "tractcast.cli", "train", "--json"],
            env=child_env(settings),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert trained.returncode == 0, trained.stderr[-3000:]
        nginx = find_nginx() is not None
        stack = start_stack(settings, with_nginx=nginx)
        port = settings.http_port if nginx else settings.api_port
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, stack, timeout=120)
        yield Running(settings, stack, url, redis, relay, mlflow, random.Random(7))
    finally:
        if stack is not None:
            stack.stop()
        for server in servers:
            server.stop()


def test_the_stack_answers_before_anything_fails(running: Running) -> None:
    assert running.forecasts() == [200] * 8
    registry = f"http://127.0.0.1:{running.settings.registry_port}"
    assert requests.get(f"{registry}/readyz", timeout=10).status_code == 200


def test_redis_down_forecasts_keep_coming(running: Running) -> None:
    running.redis.kill()
    assert running.forecasts() == [200] * 8


def test_postgresql_down_forecasts_keep_coming_and_the_registry_says_not_ready(
    running: Running,
) -> None:
    running.database.kill()
    assert running.forecasts() == [200] * 8
    registry = f"http://127.0.0.1:{running.settings.registry_port}"
    response = requests.get(f"{registry}/readyz", timeout=30)
    assert response.status_code == 503 and response.json()["error"] == "unavailable"


def test_mlflow_down_forecasts_keep_coming(running: Running) -> None:
    running.mlflow.kill()
    assert running.forecasts() == [200] * 8


def test_registry_down_forecasts_keep_coming(running: Running) -> None:
    running.kill_stack_process("registry")
    assert running.forecasts() == [200] * 8


def test_retrainer_down_forecasts_keep_coming(running: Running) -> None:
    for name in ("retrainer", "scheduler", "worker"):
        running.kill_stack_process(name)
    assert running.forecasts() == [200] * 8


def test_geo_down_the_copy_still_answers_and_the_rest_returns_by_itself_when_it_is_back(
    running: Running,
) -> None:
    geo_url = f"http://127.0.0.1:{running.settings.geo_port}"  # nginx does not serve the copy
    copy = requests.get(f"{geo_url}/v1/tracts/replica", timeout=10).json()
    answers = CellAnswers.from_dict(copy)
    points = [running.fresh_point() for _ in range(2000)]
    cells = [answers.position(point["lat"], point["lon"])[0] for point in points]
    inside = [point for point, cell in zip(points, cells, strict=True) if cell >= 0][:8]
    # A tract's first vertex: on its border, where only geo's polygons can tell.
    outlines = Outlines.from_dict(copy["outlines"], copy["ids"])
    border = {"lat": float(outlines.lats[0]), "lon": float(outlines.lons[0])}
    assert answers.position(border["lat"], border["lon"])[0] == BORDER
    before = [forecast_of(running, point) for point in inside]
    assert len(before) == 8 and all(status == 200 for status, _ in before)
    radius_before = requests.get(f"{running.url}/v1/stats/radius", params=DEMO_RADIUS, timeout=10)
    assert radius_before.status_code == 200 and radius_before.json()["tracts"]
    time.sleep(1.5)  # let any worker still fetching the copy finish

    running.kill_stack_process("geo")
    assert [forecast_of(running, point) for point in inside] == before
    for _ in range(4):  # each worker answers from its own copy
        radius = requests.get(f"{running.url}/v1/stats/radius", params=DEMO_RADIUS, timeout=10)
        assert radius.status_code == 200 and radius.json() == radius_before.json()
    response = requests.get(f"{running.url}/v1/forecast", params=border, timeout=10)
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "unavailable"

    settings = running.settings
    cmd = [
        sys.executable, "-m", "gunicorn", "services.geo.wsgi:app",
        "--bind", f"127.0.0.1:{settings.geo_port}", "--workers", "1", "--chdir", str(ROOT),
        "--config", "python:services.common.gunicorn_conf",
    ]  # fmt: skip
    metrics = Path(settings.run_dir).resolve() / "metrics" / "geo"
    env = {**child_env(settings), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    geo = Server(cmd, Path(settings.run_dir) / "logs" / "geo-again.log", env=env, cwd=ROOT)
    try:
        geo.port = settings.geo_port
        geo.wait_listening(60)

        def answered() -> bool:
            return requests.get(f"{running.url}/v1/forecast", params=border, timeout=10).ok

        wait_until(answered, 30, "forecasts did not come back after geo restarted", every=0.5)
        assert running.forecasts() == [200] * 8
    finally:
        geo.stop()
