"""Time from `tractcast serve` (what `make up` runs) to /readyz answering, on the Italy data.

Runs a first start on an empty store (trains the first model) and a restart on the same store,
then prints every candidate of the first release with its backtest metrics.
    .venv/bin/python -m bench.startup [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
ITALY = ROOT.parent / "shared" / "data" / "italy"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed_start(env: dict[str, str], port: int, timeout: float = 900.0) -> float:
    """Seconds from launching `tractcast serve` to GET /readyz == 200; then stops it."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tractcast.cli", "serve"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError("no /readyz")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--epochs", type=int, default=None, help="TRACTCAST_EPOCHS (default: settings)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tractcast-bench-") as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACTCAST_")}
        env.update(
            TRACTCAST_DATA_SOURCE=str(ITALY / "cases_provinces.csv.gz"),
            TRACTCAST_TRACTS=str(ITALY / "provinces.geojson"),
            TRACTCAST_STORE=f"{tmp}/store",
            TRACTCAST_RUN_DIR=f"{tmp}/run",
            TRACTCAST_DEMO_DIR=f"{tmp}/demo",
            TRACTCAST_HTTP_PORT=str(port),
            TRACTCAST_API_PORT=str(free_port()),
            TRACTCAST_GEO_PORT=str(free_port()),
            TRACTCAST_REGISTRY_PORT=str(free_port()),
            TRACTCAST_RETRAINER_PORT=str(free_port()),
            PYTHONPATH=str(ROOT),
        )
        if args.epochs:
            env["TRACTCAST_EPOCHS"] = str(args.epochs)
        first = timed_start(env, port)
        restart = timed_start(env, port)
        versions = subprocess.run(
            [sys.executable, "-m", "tractcast.cli", "versions", "--json"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        listing = json.loads(versions.stdout)
    print(f"first start (trains, serves {listing['current']}) to /readyz: {first:6.1f} s")
    print(f"restart with existing store to /readyz:   {restart:6.1f} s")
    print("rolling-origin backtest of the first release's candidates (recent origins):")
    print(f"  {'version':<22}{'MAE':>9}{'WAPE':>8}{'rel.MAE':>9}{'cover':>7}  serving")
    for v in listing["versions"]:
        mark = "*" if v["serving"] else ""
        print(
            f"  {v['version']:<22}{v['mae']:>9.2f}{v['wape']:>8.3f}"
            f"{v['relative_mae']:>9.3f}{v['coverage']:>7.3f}  {mark}"
        )


if __name__ == "__main__":
    main()
