"""The README's first command on a bare machine: a Debian 12 container holding only what the README
names (Python 3.11 with venv, and make; no nginx, no compiler, no pip cache) runs `make up` on a
copy of the tracked files, and every `curl` line it prints, and the dashboard, answer 200."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.deploy.test_compose_stack import BUILD_TIMEOUT, _docker_ready
from tests.faults.processes import free_port

from tractcast.runner import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BASE_IMAGE = "tractcast-offline/debian:bookworm"  # docker/build-offline-images makes it
BARE_IMAGE = "tractcast-offline/bare-machine:bookworm"
#: What the README says `make up` needs, as Debian packages.
PREREQUISITES = ("python3", "python3-venv", "make")
BARE_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends {" ".join(PREREQUISITES)} \\
    && rm -rf /var/lib/apt/lists/*
"""


def docker(*args: str, timeout: float = 600, check: bool = True) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout


def container_output(name: str) -> str:
    """What the container printed, stdout and stderr."""
    done = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def bare_image() -> str:
    _docker_ready()
    subprocess.run(  # the Debian base, made by debootstrap (seconds when it exists)
        [str(ROOT / "docker" / "build-offline-images")],
        capture_output=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    subprocess.run(
        ["docker", "build", "--network", "host", "-t", BARE_IMAGE, "-"],
        input=BARE_DOCKERFILE,
        text=True,
        capture_output=True,
        timeout=900,
        check=True,
    )
    return BARE_IMAGE


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files git tracks, as a fresh clone has them (no .venv, no var/, no node_modules)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    target = tmp_path_factory.mktemp("fresh") / "project"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in filter(None, listed):
            path = ROOT / name.decode()
            if path.exists():
                tar.add(path, arcname=name.decode())
    buffer.seek(0)
    target.mkdir()
    with tarfile.open(fileobj=buffer) as tar:
        tar.extractall(target, filter="tar")
    return target


@pytest.fixture(scope="module")
def make_up(bare_image: str, project_copy: Path) -> Iterator[tuple[str, str]]:
    """`make up` in the bare container, on host networking with free ports; its output."""
    name = f"tractcast-fresh-{uuid.uuid4().hex[:8]}"
    ports = {
        "TRACTCAST_HTTP_PORT": free_port(),
        "TRACTCAST_API_PORT": free_port(),
        "TRACTCAST_GEO_PORT": free_port(),
        "TRACTCAST_REGISTRY_PORT": free_port(),
        "TRACTCAST_RETRAINER_PORT": free_port(),
    }
    env = [f"--env={k}={v}" for k, v in ports.items()]
    script = "cp -a /src /root/tractcast && cd /root/tractcast && make up"
    docker(
        "run", "--detach", "--name", name, "--network", "host", *env,
        "--volume", f"{project_copy}:/src:ro", bare_image, "bash", "-c", script,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 2400  # installs everything from PyPI, then trains
        while time.monotonic() < deadline:
            running = docker("inspect", "-f", "{{.State.Running}}", name).strip() == "true"
            if "Ctrl-C" in container_output(name) or not running:
                break
            time.sleep(5)
        text = container_output(name)
        assert "Ctrl-C" in text, text[-5000:]
        yield name, text
    finally:
        docker("rm", "--force", name, check=False)


def test_the_bare_machine_has_no_nginx_and_make_up_says_so(make_up):
    _, output = make_up
    assert "tractcast's own gateway (nginx not installed)" in output


def test_every_printed_curl_line_and_the_dashboard_answer_200(make_up):
    _, output = make_up
    urls = [shlex.split(line.strip())[-1] for line in output.splitlines() if "curl " in line]
    assert len(urls) >= 4, output[-3000:]
    for url in urls:
        response = requests.get(url, timeout=10)
        assert response.status_code == 200, (url, response.text[:300])
    dashboard = re.search(r"dashboard: (\S+)", output)
    assert dashboard, output[-3000:]
    page = requests.get(dashboard.group(1), timeout=10)
    assert page.status_code == 200 and "<html" in page.text
