"""Two "hosts" that share no directory, only the stores: one PostgreSQL (a throwaway database), one
Redis (a database claimed for the run) and one real S3-compatible server (moto's, on loopback).

Host A runs a Celery worker on its own store; host B runs the geo service and the API with
TRACTCAST_SERVING_SOURCE=s3 (its store folder is never written: bundles and the layer come from
S3 into its cache), its registry service (the same: versions, metrics and events from the
database, bundles from S3), and later a worker of its own. One scenario, watched from start to end:
  1. A's worker trains the first champion; B's geo and API become ready on it, and B's registry
     service names it, its admin actions refused (they write the store);
  2. A's worker retrains on newer data while a thread asks B's API for forecasts: B switches to
     the new bundle and no request fails;
  3. a third retrain: A's worker is killed -9 (its whole process group) as its first LSTM fit of
     the run (the backtest's) begins, before it has registered anything; Redis hands the task to
     B's worker once the visibility timeout has passed, which restores the mirror into its empty
     store, completes the run, and numbers its versions past A's;
  4. a new layer copy in the mirror (every tract renamed) reaches B's geo with no restart while
     B's geo is asked for the same point: no request fails.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import requests
from tests.faults.processes import (
    Server,
    celery_worker,
    close_celery,
    free_port,
    machine_redis,
    moto_server,
    scratch_database,
    wait_until,
)

from services.retrainer.celery_app import RETRAIN_TASK, make_celery, retrain_task_id
from services.retrainer.tasks import LOCK_KEY
from tractcast.data.demo import BOUNDS, ensure_demo_data
from tractcast.registry.metadata import SqlMetadataStore
from tractcast.registry.mirror import S3ArtifactMirror
from tractcast.registry.store import LocalModelStore, version_number
from tractcast.runner import ROOT, child_env
from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
FIT_LINE = "training the LSTM on"  # what a worker logs as each fit begins (models/lstm.py)
HELD_BACK_DAYS = 21  # the first retrain sees the data without its last three weeks
CENTER = {"lat": sum(BOUNDS[:2]) / 2, "lon": sum(BOUNDS[2:]) / 2}
NEWER_HELD_BACK_DAYS = 7  # the second without its last week; the third all of it (new data:
# a retrain on data it has trained on already reuses its fits and would not train at all)


@dataclass
class Scenario:
    a: Settings
    b: Settings
    first: dict[str, Any] = field(default_factory=dict)
    ready_b: dict[str, Any] = field(default_factory=dict)
    second: dict[str, Any] = field(default_factory=dict)
    answers: list[tuple[int, str]] = field(default_factory=list)  # (status, bundle) during 2.
    b_after_second: str = ""
    killed_pid: int = 0
    completed_pid: int = 0
    versions_before_third: list[str] = field(default_factory=list)
    versions_at_kill: list[str] = field(default_factory=list)
    last_line_at_kill: str = ""
    third: dict[str, Any] = field(default_factory=dict)
    b_versions: list[str] = field(default_factory=list)
    mirrored: list[str] = field(default_factory=list)
    recorded_max: int = 0
    b_after_third: str = ""
    registry_first: dict[str, Any] = field(default_factory=dict)
    registry_promote: tuple[int, dict[str, Any]] = (0, {})
    b_store_written: bool = True  # before B's worker starts
    registry_third: dict[str, Any] = field(default_factory=dict)
    tract_before: str = ""
    lookups: list[tuple[int, str]] = field(default_factory=list)  # (status, tract name) during 4.


class Poller(threading.Thread):
    """Asks B's API for forecasts until stopped, noting each status and the bundle answering."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[int, str]] = []
        south, north, west, east = BOUNDS
        self.points = [
            {"lat": south + (north - south) * (i + 0.5) / 4, "lon": west + (east - west) * 0.4}
            for i in range(4)
        ]

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.wait(0.02):  # about 50 requests a second, leaving CPU to training
                point = self.points[len(self.answers) % len(self.points)]
                try:
                    response = session.get(f"{self.url}/v1/forecast", params=point, timeout=10)
                    self.answers.append((response.status_code, served(response)))
                except requests.RequestException as exc:
                    self.answers.append((0, type(exc).__name__))


def served(response: requests.Response) -> str:
    body = response.json() if response.ok else {}
    return f"{body.get('model_version')}@{body.get('data_version')}"


def lock_holder(client: redis.Redis) -> dict[str, Any] | None:
    value = client.get(LOCK_KEY)
    return None if value is None else json.loads(value)


def host_settings(base: Path, name: str, shared: dict[str, Any]) -> Settings:
    return Settings(
        store=base / name / "store",
        demo_dir=base / name / "demo",
        run_dir=base / name / "run",
        serving_cache=base / name / "cache",
        data_source=str(base / name / "data" / "cases.csv"),
        tracts=str(base / name / "data" / "tracts.geojson"),
        visibility_timeout=10,
        epochs=1,
        backtest_origins=1,
        workers=1,
        **shared,
    )


def copy_data(source: tuple[Path, Path], target: Path, held_back_days: int = 0) -> None:
    """The host's own copy of the case data (without its last days, if asked) and the layer."""
    cases, tracts = source
    target.mkdir(parents=True, exist_ok=True)
    lines = cases.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    days = sorted({row.split(",", 1)[0] for row in rows})
    kept = set(days[: len(days) - held_back_days])
    body = [row for row in rows if row.split(",", 1)[0] in kept]
    tmp = target / "cases.csv.tmp"
    tmp.write_text(header + "".join(body))
    os.replace(tmp, target / "cases.csv")
    (target / "tracts.geojson").write_bytes(tracts.read_bytes())


def fits_begun(worker: Server) -> int:
    """How many LSTM fits the worker's log says have begun."""
    return worker.tail(chars=10**8).count(FIT_LINE)


def last_logged(worker: Server) -> str:
    """The worker's last log record (TensorFlow's native lines left out)."""
    records = [line for line in worker.tail(chars=10**8).splitlines() if line.startswith("[")]
    return records[-1] if records else ""


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    return {**child_env(settings), **AWS, **extra}


def start_worker(settings: Settings, name: str) -> Server:
    log = Path(settings.run_dir) / f"worker-{name}.log"
    return celery_worker(settings, name, log, env=env_of(settings))


def start_web(settings: Settings, name: str, app: str, port: int) -> Server:
    cmd = [
        sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
        "--workers", "1", "--chdir", str(ROOT), "--timeout", "120",
        "--config", "python:services.common.gunicorn_conf",
    ]  # fmt: skip
    metrics = Path(settings.run_dir).resolve() / "metrics" / name
    env = env_of(settings, PROMETHEUS_MULTIPROC_DIR=str(metrics))
    server = Server(cmd, Path(settings.run_dir) / f"{name}.log", env=env, cwd=ROOT, port=port)
    return server.wait_listening(60)


def ready(url: str) -> dict[str, Any] | None:
    try:
        response = requests.get(f"{url}/readyz", timeout=10)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def answering(url: str) -> str:
    return served(requests.get(f"{url}/v1/forecast", params=CENTER, timeout=10))


def current_of(registry_url: str) -> dict[str, Any]:
    response = requests.get(f"{registry_url}/v1/models/current", timeout=30)
    return response.json() if response.ok else {}


def tract_name(geo_url: str) -> str:
    response = requests.get(f"{geo_url}/v1/tracts/lookup", params=CENTER, timeout=10)
    return str(response.json()["tract"]["name"])


@pytest.fixture(scope="module")
def scenario(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    base = tmp_path_factory.mktemp("hosts")
    servers: list[Server] = []
    with scratch_database("tractcast_hosts") as database:
        broker = machine_redis(broker_url)
        try:
            s3 = moto_server(base / "moto")
            servers.append(s3)
            endpoint = f"http://127.0.0.1:{s3.port}"
            bucket = f"tractcast-{secrets.token_hex(4)}"
            boto3.client("s3", endpoint_url=endpoint, **_client_args()).create_bucket(Bucket=bucket)
            shared = {
                "database_url": f"{POSTGRES}/{database}",
                "broker_url": broker_url,
                "s3_bucket": bucket,
                "s3_endpoint_url": endpoint,
            }
            a = host_settings(base, "a", shared)
            b = host_settings(base, "b", shared).with_(
                serving_source="s3",
                api_port=free_port(),
                geo_port=free_port(),
                registry_port=free_port(),
                admin_token="two-hosts-token",
            )
            source = ensure_demo_data(Settings(demo_dir=base / "demo-source"))
            copy_data(source, base / "a" / "data", HELD_BACK_DAYS)
            seen = Scenario(a, b)
            yield run_scenario(seen, base, source, broker, servers)
        finally:
            for server in reversed(servers):
                server.stop()
            broker.close()


def run_scenario(
    seen: Scenario,
    base: Path,
    source: tuple[Path, Path],
    broker: redis.Redis,
    servers: list[Server],
) -> Scenario:
    a, b = seen.a, seen.b
    celery = make_celery(a)
    try:
        # 1. the first champion, trained on host A
        worker_a = start_worker(a, "a")
        servers.append(worker_a)
        seen.first = celery.send_task(RETRAIN_TASK, args=("test",)).get(timeout=400)
        servers.append(start_web(b, "geo", "services.geo.wsgi:app", b.geo_port))
        servers.append(start_web(b, "api", "services.api.wsgi:app", b.api_port))
        api_b = f"http://127.0.0.1:{b.api_port}"
        wait_until(lambda: ready(api_b) is not None, 90, "B's API was not ready", every=0.5)
        seen.ready_b = ready(api_b) or {}
        servers.append(start_web(b, "registry", "services.registry.wsgi:app", b.registry_port))
        registry_b = f"http://127.0.0.1:{b.registry_port}"
        seen.registry_first = requests.get(f"{registry_b}/v1/models/current", timeout=30).json()
        promote = requests.post(
            f"{registry_b}/v1/admin/promote",
            json={"version": seen.first["champion"]},
            headers={"Authorization": f"Bearer {b.admin_token}"},
            timeout=30,
        )
        seen.registry_promote = (promote.status_code, promote.json())

        # 2. newer data on host A, retrained there, while B answers forecasts
        poller = Poller(api_b)
        poller.start()
        try:
            copy_data(source, base / "a" / "data", NEWER_HELD_BACK_DAYS)
            seen.second = celery.send_task(RETRAIN_TASK, args=("test",)).get(timeout=400)
            wanted = seen.second["bundle_id"]
            wait_until(lambda: answering(api_b) == wanted, 60, "B never served the new bundle")
            # the poller's own last answer too: one of its requests may have been under way
            # when the switch happened
            wait_until(
                lambda: len(poller.answers) > 50 and poller.answers[-1][1] == wanted,
                30,
                "the poller stalled",
            )
        finally:
            poller.stop.set()
            poller.join(timeout=15)
        seen.answers = poller.answers
        seen.b_after_second = answering(api_b)

        seen.b_store_written = Path(b.store).exists()

        # 3. host A's worker killed while it trains; host B's worker completes the run
        copy_data(source, base / "a" / "data")
        copy_data(source, base / "b" / "data")
        store_a = LocalModelStore(a.store)
        seen.versions_before_third = [v.version for v in store_a.list_versions()]
        fits = fits_begun(worker_a)
        killed = retrain_task_id("two-hosts-killed", secrets.token_hex(4))  # this run's own
        celery.send_task(RETRAIN_TASK, args=("test",), task_id=killed)
        wait_until(
            lambda: (lock_holder(broker) or {}).get("task_id") == killed, 120, "A never started"
        )
        seen.killed_pid = int((lock_holder(broker) or {})["pid"])
        # mid-training: as the run's first fit (the backtest's) begins; a fit takes seconds here
        wait_until(lambda: fits_begun(worker_a) > fits, 300, "A never began training", 0.02)
        worker_a.kill(signal.SIGKILL)
        seen.last_line_at_kill = last_logged(worker_a)
        seen.versions_at_kill = [v.version for v in store_a.list_versions()]
        worker_b = start_worker(b.with_(serving_source="local"), "b")
        servers.append(worker_b)
        wait_until(
            lambda: (lock_holder(broker) or {"pid": seen.killed_pid})["pid"] != seen.killed_pid,
            120,
            "the killed task was never redelivered",
        )
        seen.completed_pid = int((lock_holder(broker) or {}).get("pid", 0))
        seen.third = celery.AsyncResult(killed).get(timeout=400)
        seen.b_versions = [v.version for v in LocalModelStore(b.store).list_versions()]
        metadata = SqlMetadataStore(str(a.database_url))
        try:
            seen.recorded_max = metadata.max_version_number()
            serving = metadata.serving_bundle_id()
        finally:
            metadata.close()
        seen.mirrored = S3ArtifactMirror(
            str(a.s3_bucket),
            client=boto3.client("s3", endpoint_url=a.s3_endpoint_url, **_client_args()),
        ).mirrored_versions()
        wait_until(lambda: answering(api_b) == serving, 60, "B's API never followed")
        seen.b_after_third = answering(api_b)
        wait_until(
            lambda: current_of(registry_b).get("bundle_id") == serving, 60, "B's registry lagged"
        )
        seen.registry_third = current_of(registry_b)

        # 4. a new layer copy in the mirror reaches B's geo, which is not restarted
        geo_b = f"http://127.0.0.1:{b.geo_port}"
        seen.tract_before = tract_name(geo_b)
        renamed = base / "renamed" / "tracts.geojson"
        layer = json.loads(Path(source[1]).read_text())
        for feature in layer["features"]:
            feature["properties"]["name"] = f"New {feature['properties']['name']}"
        renamed.parent.mkdir()
        renamed.write_text(json.dumps(layer))
        S3ArtifactMirror(
            str(a.s3_bucket),
            client=boto3.client("s3", endpoint_url=a.s3_endpoint_url, **_client_args()),
        ).sync_layer(renamed)
        with requests.Session() as session:
            deadline = time.monotonic() + 60  # the geo looks every PROBE_INTERVAL (10 s)
            while time.monotonic() < deadline:
                response = session.get(f"{geo_b}/v1/tracts/lookup", params=CENTER, timeout=10)
                body = response.json() if response.ok else {}
                seen.lookups.append((response.status_code, body.get("tract", {}).get("name")))
                if seen.lookups[-1][1] != seen.tract_before:
                    break
                time.sleep(0.05)
        return seen
    finally:
        close_celery(celery)


def _client_args() -> dict[str, str]:
    return {
        "region_name": AWS["AWS_DEFAULT_REGION"],
        "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
    }


def test_a_champion_trained_on_host_a_serves_on_host_b_from_s3(scenario: Scenario) -> None:
    assert scenario.first["status"] == "done" and scenario.first["promoted"]
    assert scenario.ready_b["model_version"] == scenario.first["champion"]
    assert scenario.ready_b["artifact_store"] == "ok"
    cached = Path(scenario.b.serving_cache) / "bundles" / scenario.first["bundle_id"]
    assert (cached / "bundle.json").is_file()


def test_a_retrain_on_host_a_reaches_host_b_with_no_request_failing(scenario: Scenario) -> None:
    statuses = {status for status, _ in scenario.answers}
    assert statuses == {200}, [a for a in scenario.answers if a[0] != 200][:5]
    bundles = [bundle for _, bundle in scenario.answers]
    assert bundles[0] == scenario.first["bundle_id"]
    assert bundles[-1] == scenario.second["bundle_id"] != scenario.first["bundle_id"]
    switches = sum(
        1 for before, after in zip(bundles, bundles[1:], strict=False) if before != after
    )
    assert switches == 1  # once, never back


def test_host_a_killed_mid_training_the_retrain_completes_on_host_b(scenario: Scenario) -> None:
    # A died in its fit, with nothing of the run logged after it began or registered
    assert FIT_LINE in scenario.last_line_at_kill
    assert scenario.versions_at_kill == scenario.versions_before_third
    assert scenario.completed_pid not in (0, scenario.killed_pid)
    third = scenario.third
    assert third["status"] == "done"
    made_on_b = set(third["versions"].values())
    assert made_on_b <= set(scenario.b_versions) and made_on_b <= set(scenario.mirrored)
    # B started from every version A mirrored, and numbered its own past all of them
    assert set(scenario.versions_at_kill) & set(scenario.mirrored) <= set(scenario.b_versions)
    newest_before = max(version_number(v) for v in scenario.versions_at_kill)
    assert min(version_number(v) for v in made_on_b) > newest_before
    assert scenario.recorded_max == max(version_number(v) for v in made_on_b)
    assert scenario.b_after_third == third["bundle_id"]


def test_host_bs_registry_service_answers_from_the_database_and_s3(scenario: Scenario) -> None:
    first = scenario.registry_first
    assert first["version"] == scenario.first["champion"]
    assert first["bundle_id"] == scenario.first["bundle_id"] and first["metrics"]
    assert first["live_skill"]["version"] == scenario.first["champion"]
    status, body = scenario.registry_promote
    assert status == 409 and "run it where the store is" in body["message"]
    assert not scenario.b_store_written  # until B's own worker started, in 3.
    assert scenario.registry_third["bundle_id"] == scenario.third["bundle_id"]


def test_a_new_layer_copy_reaches_host_bs_geo_without_a_restart(scenario: Scenario) -> None:
    assert {status for status, _ in scenario.lookups} == {200}
    assert scenario.lookups[-1][1] == f"New {scenario.tract_before}"
