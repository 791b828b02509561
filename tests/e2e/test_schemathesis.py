"""Schemathesis against the live stack through nginx, with the /openapi.json it serves.

Every operation is fed the contract's own examples, boundary and invalid values and random
input: no answer may be a 5xx, every answer must match the documented status, media type,
headers and schema, invalid input must be refused, undeclared methods must get 405 with Allow,
and admin routes must refuse requests without the bearer token.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
from tests.faults.processes import loopback_ports, stack_through_nginx

from tractcast.runner import ROOT, child_env
from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HERE = Path(__file__).resolve().parent

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
)
# A batch over the documented 10,000 points is refused with 413, and a request line over 4 KB
# with 414: refusals schemathesis does not count by default; the rest stays as it is.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 414, 415, 422, 428, 429]
"""
MAX_EXAMPLES = 150  # per operation and phase: about a minute on the 2-core CI machine


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, italy_cases: Path, italy_provinces: Path):
    base = tmp_path_factory.mktemp("fuzz")
    cases = base / "italy-slice.csv.gz"
    with gzip.open(italy_cases, "rt", encoding="utf-8") as src, gzip.open(cases, "wt") as out:
        out.write(next(src))
        out.writelines(line for line in src if "2022-09-01" <= line[:10] <= "2023-01-31")
    return Settings(
        data_source=str(cases),
        tracts=str(italy_provinces),
        store=base / "store",
        run_dir=base / "run",
        demo_dir=base / "demo",
        admin_token="fuzz-admin-token",  # never given to schemathesis
        **loopback_ports(),
        epochs=1,
        workers=1,
        # The limits stay on (429 is part of the contract), set above this test's pace.
        rate_limit="5000r/s",
        admin_rate_limit="6000r/m",
    )


@pytest.fixture(scope="module")
def url(settings: Settings) -> Iterator[str]:
    trained = subprocess.run(
        [sys.executable, "-m", "tractcast.cli", "train", "--json"],
        env=child_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    with stack_through_nginx(settings) as public:
        yield public


def run_schemathesis(url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(config),
        "run", f"{url}/openapi.json",
        "--checks", ",".join(CHECKS),
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "20240301",
        "--workers", "2",
        "--request-timeout", "20",
        "--max-failures", "20",
        "--no-shrink",
        "--report", "junit",
        "--report-junit-path", str(workdir / "junit.xml"),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def summary_of(output: str, limit: int = 12_000) -> str:
    """The errors, failures and summary of schemathesis's output (its cases can be huge)."""
    start = min((i for i in (output.find("ERRORS"), output.find("FAILURES")) if i >= 0), default=-1)
    text = output[start:] if start >= 0 else output
    lines = [line if len(line) < 400 else line[:400] + " ..." for line in text.splitlines()]
    return "\n".join(lines)[-limit:]


def test_the_served_contract_covers_every_public_route(url: str) -> None:
    paths = requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]
    assert {
        "/v1/forecast",
        "/v1/stats/radius",
        "/v1/tracts",
        "/v1/tracts/lookup",
        "/v1/tracts/radius",
        "/v1/tracts/{tract_id}",
        "/v1/models",
        "/v1/models/current",
        "/v1/models/{version}",
        "/v1/events",
        "/v1/admin/promote",
        "/v1/admin/rollback",
        "/v1/admin/retrain",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    } <= set(paths)


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_contract(
    url: str, tmp_path: Path
) -> None:
    paths = requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]
    operations = {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}

    result = run_schemathesis(url, tmp_path)

    assert result.returncode == 0, summary_of(result.stdout + result.stderr)
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    tested = {case.get("name") for case in suite.iter("testcase")}
    # Every operation of the served contract ran (schemathesis leaves out the document it
    # was given, and adds a case for its stateful phase).
    assert operations - {"GET /openapi.json"} <= tested
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
