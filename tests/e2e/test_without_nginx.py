"""`make up` on a machine without nginx: the first start trains with readable progress, then every
route of the public contract and the dashboard answer on the one printed URL (the gateway)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.faults.processes import loopback_ports, port_open, wait_until

from tractcast.runner import ROOT, child_env
from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "no-nginx-token"
# What TensorFlow's C++ runtime prints at import and during fits; none of it may reach a person.
TENSORFLOW_NOISE = re.compile(
    r"NodeDef mentions|oneDNN|^[EIW]0000 |absl|cuda|HDF5|tensorflow", re.M | re.I
)


@pytest.fixture(scope="module")
def first_start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """`tractcast serve` (what `make up` runs) on an empty store, nginx switched off."""
    base = tmp_path_factory.mktemp("no-nginx")
    settings = Settings(
        store=base / "store",
        run_dir=base / "run",
        demo_dir=base / "demo",
        admin_token=TOKEN,
        nginx="off",
        rate_limit="1000r/s",  # the routes are under test here; the limits in test_gateway_app
        epochs=2,
        backtest_origins=1,
        workers=1,
        **loopback_ports(),
    )
    log = base / "make-up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tractcast.cli", "serve"],
            env=child_env(settings),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "Ctrl-C" in log.read_text() or proc.poll() is not None, 600, "make up ready"
        )
        assert proc.poll() is None, log.read_text()[-4000:]
        yield settings, log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    wait_until(lambda: not port_open(settings.http_port), 30, "the gateway stops")


def printed_curls(output: str) -> list[list[str]]:
    return [shlex.split(line.strip())[1:] for line in output.splitlines() if "curl " in line]


def test_the_first_start_shows_its_progress_without_tensorflow_noise(first_start):
    _, output = first_start
    steps = [(int(d), int(t)) for d, t in re.findall(r"backtest (\d+)/(\d+)", output)]
    assert steps and all(done <= total for done, total in steps), steps
    assert steps[-1][0] == steps[-1][1]  # the count ends where it said it would
    assert "final fit and bundles" in output and "ingest" in output
    assert re.search(r"first model: v\d{4}-\w+ serves", output)  # whichever candidate won
    assert not TENSORFLOW_NOISE.search(output), TENSORFLOW_NOISE.search(output)


def test_the_printed_url_is_the_one_entry_point_and_names_the_gateway(first_start):
    settings, output = first_start
    url = f"http://127.0.0.1:{settings.http_port}"
    assert "ready after" in output and f"at {url}" in output
    assert "own gateway (nginx not installed)" in output
    assert f"dashboard: {url}/" in output


def test_every_printed_curl_line_answers_200(first_start):
    _, output = first_start
    curls = printed_curls(output)
    assert len(curls) >= 4
    for args in curls:
        response = requests.get(args[-1], timeout=10)
        assert response.status_code == 200, (args, response.text[:300])
        assert response.headers["Content-Type"].startswith("application/json")


def test_the_dashboard_and_every_part_of_the_contract_answer_on_that_url(first_start):
    settings, _ = first_start
    url = f"http://127.0.0.1:{settings.http_port}"
    page = requests.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert requests.get(f"{url}{asset}", timeout=10).status_code == 200, asset
    tracts = requests.get(f"{url}/v1/tracts", timeout=10).json()["tracts"]
    first = tracts[0]["id"]
    for path in (
        "/v1/tracts/geojson", f"/v1/tracts/{first}", f"/v1/tracts/{first}/history",
        "/v1/dashboard/tracts", "/v1/models", "/v1/events", "/openapi.json", "/metrics",
        "/healthz", "/readyz",
    ):  # fmt: skip
        assert requests.get(f"{url}{path}", timeout=10).status_code == 200, path
    assert requests.get(f"{url}/v1/tracts/replica", timeout=10).status_code == 404


def test_admin_routes_answer_through_the_gateway_with_the_token(first_start):
    settings, _ = first_start
    url = f"http://127.0.0.1:{settings.http_port}"
    assert requests.post(f"{url}/v1/admin/rollback", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert requests.post(f"{url}/v1/admin/rollback", headers=wrong, timeout=10).status_code == 403
    auth = {"Authorization": f"Bearer {TOKEN}"}
    current = requests.get(f"{url}/v1/models/current", timeout=10).json()["version"]
    others = [
        v["version"]
        for v in requests.get(f"{url}/v1/models", timeout=10).json()["versions"]
        if v["version"] != current
    ]
    promoted = requests.post(
        f"{url}/v1/admin/promote", json={"version": others[0]}, headers=auth, timeout=30
    )
    assert promoted.status_code == 200, promoted.text
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        point = requests.get(f"{url}/v1/models/current", timeout=10).json()["version"]
        if point == others[0]:
            break
        time.sleep(0.2)
    assert point == others[0]
    back = requests.post(f"{url}/v1/admin/rollback", headers=auth, timeout=30)
    assert back.status_code == 200, back.text
    assert requests.get(f"{url}/v1/models/current", timeout=10).json()["version"] == current


def test_the_store_was_trained_by_the_first_start(first_start):
    settings, _ = first_start
    assert (Path(settings.store) / "current").is_symlink()
