"""The dashboard at / on the real stack (gunicorn services, nginx) over a slice of the Italy data,
driven in headless Chromium (Debian's) by playwright-core: tests/web/dashboard.spec.mjs.

Two trainings on data that grows between them, so the store holds earlier forecasts of days
that have happened since, and two lstm versions to roll back between. Screenshots are kept in
tests/web/artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.faults.processes import loopback_ports, run_cli, stack_through_nginx, write_italy_slice

from tractcast.runner import ROOT
from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "web-admin-token"
HERE = Path(__file__).resolve().parent
SPEC = HERE / "dashboard.spec.mjs"
ARTIFACTS = HERE / "artifacts"
CHROMIUM = "/usr/bin/chromium"
PROVINCES = 107
FIRST_END, SECOND_END = "2023-01-17", "2023-01-31"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, italy_provinces: Path) -> Settings:
    base = tmp_path_factory.mktemp("web")
    return Settings(
        data_source=str(base / "italy-slice.csv.gz"),
        tracts=str(italy_provinces),
        store=base / "store",
        run_dir=base / "run",
        demo_dir=base / "demo",
        admin_token=TOKEN,
        **loopback_ports(),
        epochs=1,
        workers=1,
    )


@pytest.fixture(scope="module")
def trainings(settings: Settings, italy_cases: Path) -> tuple[dict, dict]:
    """A first training on data to FIRST_END, a second one once data to SECOND_END is out."""
    source = Path(settings.data_source)
    write_italy_slice(italy_cases, source, "2022-06-01", FIRST_END)
    first = run_cli(settings, "train")
    write_italy_slice(italy_cases, source, "2022-06-01", SECOND_END)
    return first, run_cli(settings, "train")


@pytest.fixture(scope="module")
def url(settings: Settings, trainings: tuple[dict, dict]) -> Iterator[str]:
    """The stack through nginx, serving the second training's lstm (promoted by hand if the
    gate kept the first one)."""
    _, second = trainings
    with stack_through_nginx(settings) as public:
        if second["promoted"] is None:
            response = requests.post(
                f"{public}/v1/admin/promote",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={"version": second["candidate"]},
                timeout=10,
            )
            assert response.status_code == 200, response.text
        wait_for_map_version(public, second["candidate"])
        yield public


def wait_for_map_version(url: str, version: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(f"{url}/v1/dashboard/tracts", timeout=5).json()["model_version"] == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"the api did not serve {version} within {timeout} s")


def test_the_page_and_everything_it_reads_come_through_nginx(url: str, trainings) -> None:
    page = requests.get(f"{url}/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert '<script type="module" src="/static/app.js">' in page.text
    script = requests.get(f"{url}/static/app.js", timeout=5)
    assert script.headers["Content-Type"].startswith("text/javascript")
    missing = requests.get(f"{url}/static/nothing.js", timeout=5)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")

    outlines = requests.get(f"{url}/v1/tracts/geojson", timeout=10).json()
    assert len(outlines["features"]) == PROVINCES
    summary = requests.get(f"{url}/v1/dashboard/tracts", timeout=5).json()
    assert len(summary["tracts"]) == PROVINCES and summary["as_of"] == SECOND_END
    milano = next(row for row in summary["tracts"] if row["id"] == "015")
    assert milano["last_week"] > 0 and milano["growth"] is not None

    history = requests.get(f"{url}/v1/tracts/015/history", timeout=5).json()
    assert history["history"][-1]["date"] == SECOND_END and len(history["history"]) == 120
    earlier = history["earlier"][0]  # first: the older data's lstm, the champion back then
    assert earlier["as_of"] == FIRST_END
    assert earlier["model_version"] == trainings[0]["versions"]["lstm"]
    assert earlier["forecast"][-1]["date"] == SECOND_END  # 14 days that have happened since


def test_a_planner_sees_every_tract_a_chart_and_rolls_back_from_the_admin_panel(
    url: str, trainings
) -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    serving_before = requests.get(f"{url}/v1/models/current", timeout=5).json()["version"]

    seen = run_browser_spec(
        SPEC,
        DASHBOARD_URL=f"{url}/",
        ADMIN_TOKEN=TOKEN,
        ARTIFACTS_DIR=str(ARTIFACTS),
        EXPECTED_TRACTS=str(PROVINCES),
    )

    assert seen["tracts"] == PROVINCES
    assert seen["tractTitle"] == "Milano (015)"
    assert seen["historyBars"] > 0 and seen["forecastBands"] == 1 and seen["earlierLines"] >= 1
    assert seen["radiusRows"] >= 4
    assert seen["servingBefore"] == serving_before == trainings[1]["candidate"]
    assert "HTTP 403" in seen["refusedText"]
    current = requests.get(f"{url}/v1/models/current", timeout=5).json()["version"]
    assert seen["servingAfter"] == current != serving_before
    assert current == trainings[0]["champion"]  # the champion before the promotion
    assert seen["foreignRequests"] == []
    for name in ("01-map-growth", "02-milano-chart", "03-radius", "04-after-rollback"):
        shot = ARTIFACTS / f"{name}.png"
        assert shot.is_file() and shot.stat().st_size > 10_000, shot


def run_browser_spec(spec: Path, **env: str) -> dict:
    """Run a browser spec (node, playwright-core, Debian's Chromium) with `env` added; what it
    saw, from its last line of output. A spec that fails fails the test with its reason."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node 20 or newer runs the browser test)")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is missing: run `make install` (npm ci)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    run = subprocess.run(
        [node, str(spec)],
        env={**os.environ, "CHROMIUM": CHROMIUM, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    lines = run.stdout.strip().splitlines()
    seen: dict = json.loads(lines[-1]) if lines else {}
    assert run.returncode == 0, seen.get("failure") or run.stderr[-3000:]
    return seen
