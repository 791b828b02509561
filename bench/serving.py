"""Serving speed through nginx, side by side in one run, on the real stack over Italy data.

1. Trains a small model on a slice of the Italy provinces data (like the end-to-end test) and
   starts the real stack (gunicorn per service, nginx) on free loopback ports.
2. wrk saturates GET /healthz and GET /v1/forecast through the same nginx and gunicorn, and a
   Keras reference server beside them (bench/keras_reference.py: model.predict per request,
   same model), in interleaved rounds; ratios are taken within a round.
3. A paced client sends 200 requests/s to each and reports p50/p99 from when each was due.
4. POST /v1/forecast with 1,000 points, /v1/stats/radius at 50 km; then a second stack over
   the 7,899 municipalities (with a synthetic bundle for every one) for the radius goal.
5. Memory (RSS, PSS) of every api and geo worker, and whether any of them mapped TensorFlow.

    .venv/bin/python -m bench.serving [--seconds 10] [--rounds 3] [--rate 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.load import Load, paced, saturate
from tractcast.geo.index import TractIndex
from tractcast.registry.store import LocalModelStore
from tractcast.runner import ROOT, Stack, child_env, start_stack, wait_ready
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast
from tractcast.settings import Settings

ITALY = ROOT.parent / "shared" / "data" / "italy"
PROVINCES = ITALY / "provinces.geojson"
MUNICIPALITIES = ITALY / "municipalities.geojson.gz"
MILAN = (45.4642, 9.19)
# Far above any rate the bench sends: the limits stay on, they just do not bind here.
BENCH_RATE_LIMIT = "1000000r/s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_settings(base: Path, **overrides: object) -> Settings:
    settings = Settings(
        store=base / "store",
        run_dir=base / "run",
        demo_dir=base / "demo",
        http_port=free_port(),
        api_port=free_port(),
        geo_port=free_port(),
        registry_port=free_port(),
        retrainer_port=free_port(),
        rate_limit=BENCH_RATE_LIMIT,
        admin_token="bench-token",
    )
    return settings.with_(**overrides)


def write_cases_slice(target: Path, start: str = "2022-06-01", end: str = "2023-01-31") -> None:
    """The Italy provinces file restricted to days in [start, end] (as the e2e test does)."""
    source = ITALY / "cases_provinces.csv.gz"
    with gzip.open(source, "rt", encoding="utf-8") as src, gzip.open(target, "wt") as out:
        out.write(next(src))
        for line in src:
            if start <= line[:10] <= end:
                out.write(line)


def train(settings: Settings) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tractcast.cli", "train", "--json"],
        env=child_env(settings), cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout)


@contextmanager
def running(settings: Settings) -> Iterator[tuple[str, Stack]]:
    stack = start_stack(settings, with_nginx=True)
    try:
        url = f"http://127.0.0.1:{settings.http_port}"
        wait_ready(url, stack, timeout=180)
        yield url, stack
    except Exception:
        show_problems(stack.run_dir / "logs")
        raise
    finally:
        stack.stop()


def show_problems(log_dir: Path, lines: int = 20) -> None:
    """The last log lines of each service that are not a plain 2xx request."""
    for log in sorted(log_dir.glob("*.log")):
        problems = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if '"status":2' not in line and "Booting worker" not in line
        ]
        if problems:
            print(f"--- {log.name}", *problems[-lines:], sep="\n", file=sys.stderr)


@contextmanager
def keras_reference(settings: Settings, version: str, workers: int) -> Iterator[str]:
    """gunicorn serving bench/keras_reference.py with the API's own gunicorn settings."""
    port = free_port()
    env = {**child_env(settings), "BENCH_MODEL_VERSION": version}
    log = open(Path(settings.run_dir) / "keras-reference.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bench.keras_reference:create_app()",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "120",
         "--config", "python:services.common.gunicorn_conf"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not _answers(url, "/healthz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Keras reference did not start; see {log.name}")
            time.sleep(0.5)
        # Keras traces its predict function on a worker's first calls: not part of the rate.
        for _ in range(4 * workers):
            timed(url, "GET", f"/v1/forecast?lat={MILAN[0]}&lon={MILAN[1]}", runs=1, warmup=0)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def _answers(url: str, path: str) -> bool:
    try:
        return timed(url, "GET", path, runs=1, warmup=0) is not None
    except OSError:
        return False


def timed(
    url: str, method: str, path: str, body: bytes | None = None, runs: int = 50, warmup: int = 5
) -> list[float]:
    """Milliseconds per request, one keep-alive connection, body read in full, 2xx required."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    times = []
    try:
        for i in range(warmup + runs):
            started = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if not 200 <= response.status < 300:
                raise RuntimeError(f"{method} {path}: HTTP {response.status}")
            if i >= warmup:
                times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return times


def inside_points(path: Path, count: int, seed: int = 0) -> list[tuple[float, float]]:
    """Random points inside the tracts of a layer, spread over all of them."""
    index = TractIndex.from_file(path)
    west, south, east, north = index.bounds
    rng = np.random.default_rng(seed)
    lats, lons = rng.uniform(south, north, count * 20), rng.uniform(west, east, count * 20)
    inside = np.flatnonzero(index.positions_for_points(lats, lons) >= 0)[:count]
    return list(zip(lats[inside].round(5).tolist(), lons[inside].round(5).tolist(), strict=True))


def forecast_paths(points: list[tuple[float, float]]) -> list[str]:
    return [f"/v1/forecast?lat={lat}&lon={lon}" for lat, lon in points]


def synthetic_bundle(index: TractIndex) -> Bundle:
    """A bundle answering for every tract of a layer (the radius bench needs data everywhere)."""
    days = tuple(ForecastDay(f"2023-02-{d + 1:02d}", 10.0 + d, 8.0, 12.0 + d) for d in range(14))
    tracts = {t.id: TractForecast(t.id, "2023-01-31", 1000, 10, days) for t in index.tracts}
    return Bundle(
        bundle_id="v0001-synthetic@bench",
        model_version="v0001-synthetic",
        data_version="bench",
        as_of="2023-01-31",
        created_at="2023-02-01T00:00:00+00:00",
        horizon=14,
        tracts=tracts,
    )


def varied_bundle(tract_ids: list[str], data_version: str, seed: int = 0) -> Bundle:
    """A bundle for every tract with numbers of its own (a bundle of equal forecasts would
    shrink to almost nothing: the bundle format shares what repeats), and 90 days of history."""
    rng = np.random.default_rng(seed)
    tracts = {}
    for tract_id in tract_ids:
        level = float(rng.gamma(2.0, 40.0))
        days = tuple(
            ForecastDay(
                f"2023-02-{d + 1:02d}",
                round(level * (1 + 0.02 * d), 2),
                round(level * 0.7, 2),
                round(level * (1.3 + 0.03 * d), 2),
                ((0.5, round(level * 0.85, 2), round(level * 1.15, 2)),
                 (0.95, round(level * 0.5, 2), round(level * 1.6, 2))),
            )
            for d in range(14)
        )  # fmt: skip
        history = tuple(int(v) for v in rng.poisson(level, 90))
        tracts[tract_id] = TractForecast(
            tract_id, "2023-01-31", int(level * 300), history[-1], days, history
        )
    return Bundle(
        bundle_id=f"v0001-synthetic@{data_version}",
        model_version="v0001-synthetic",
        data_version=data_version,
        as_of="2023-01-31",
        created_at="2023-02-01T00:00:00+00:00",
        horizon=14,
        tracts=tracts,
    )


def publish(store: Path, bundle: Bundle) -> None:
    """Serve a synthetic bundle from an empty store, under a version of its own (no model)."""
    registry = LocalModelStore(store)
    family = bundle.model_version.partition("-")[2]
    version = registry.create_version(family, lambda _: None, {}, {"data_version": "bench"})
    assert version.version == bundle.model_version, "publish needs an empty store"
    registry.set_current(registry.add_bundle(bundle))


def workers_of(master: int) -> list[int]:
    """PIDs whose parent is `master` (gunicorn's workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            children.append(int(stat.parent.name))
    return sorted(children)


def cpu_of(pids: list[int]) -> tuple[float, int]:
    """(CPU seconds, minor page faults) the processes used so far, all their threads together."""
    seconds, faults = 0.0, 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        faults += int(fields[7])
        seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds, faults


def memory_of(pid: int) -> tuple[float, float, bool]:
    """(RSS MB, PSS MB, whether TensorFlow is mapped) of one process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
    maps = Path(f"/proc/{pid}/maps").read_text()
    return rss / 1024, pss / 1024, "tensorflow" in maps


def worker_memory(stack: Stack, layer: str) -> dict[str, list[tuple[float, float, bool]]]:
    """memory_of each api and geo worker of a running stack, by "service, layer"."""
    return {
        f"{name}, {layer}": [memory_of(pid) for pid in workers_of(stack.processes[name].pid)]
        for name in ("api", "geo")
    }


def memory_lines(memory: dict[str, list[tuple[float, float, bool]]]) -> list[str]:
    """One line per service and layer: each worker's RSS / PSS, and whether TensorFlow is in."""
    lines = []
    for name, workers in memory.items():
        shown = ", ".join(f"{rss:.0f} / {pss:.0f}" for rss, pss, _ in workers)
        tensorflow = any(tf for _, _, tf in workers)
        lines.append(f"  {name}: {shown}; TensorFlow mapped in any worker: {tensorflow}")
    return lines


def describe(times: list[float]) -> str:
    return f"p50 {statistics.median(times):6.2f} ms   p99 {np.percentile(times, 99):6.2f} ms"


def load_line(name: str, load: Load) -> str:
    return (
        f"  {name:<44}{load.rps:>9.0f}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}{load.max_ms:>9.2f}"
        f"{load.errors:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per saturating or paced run")
    parser.add_argument("--rate", type=float, default=200.0, help="paced requests per second")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of api and geo")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved saturating rounds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tractcast-bench-serving-") as tmp:
        base = Path(tmp)
        cases = base / "italy-slice.csv.gz"
        write_cases_slice(cases)
        settings = stack_settings(
            base / "provinces",
            data_source=str(cases),
            tracts=str(PROVINCES),
            epochs=args.epochs,
            workers=args.workers,
        )
        print(f"training a model on {cases.name} ({args.epochs} epochs) ...", flush=True)
        trained = train(settings)
        # The LSTM of this run (the champion may be a baseline: the bundle is what serves).
        version = trained.get("versions", {}).get("lstm") or trained["version"]
        serving = trained.get("champion") or version
        points = inside_points(PROVINCES, 200)
        paths = forecast_paths(points)
        # Distinct points, each asked about once: the grid answers most, geo those at a border.
        fresh = forecast_paths(inside_points(PROVINCES, 30_000, seed=1))
        batch = json.dumps({"points": [{"lat": a, "lon": o} for a, o in points * 5]}).encode()
        radius_path = f"/v1/stats/radius?lat={MILAN[0]}&lon={MILAN[1]}&radius_km=50"

        print("starting the stack and the Keras reference ...", flush=True)
        with (
            running(settings) as (url, stack),
            keras_reference(settings, version, args.workers) as reference_url,
        ):
            # Rounds interleave the four targets, so a change in the machine's load hits all of
            # them alike; each ratio is taken within a round and the median round is reported.
            targets = {
                "health": (url, ["/healthz"]),
                "forecast": (url, paths),
                "fresh": (url, fresh),
                "reference": (reference_url, paths),
            }
            rounds: list[dict[str, Load]] = []
            for number in range(args.rounds):
                print(f"saturating, round {number + 1} of {args.rounds} ...", flush=True)
                rounds.append(
                    {
                        name: saturate(target, target_paths, args.seconds, args.connections)
                        for name, (target, target_paths) in targets.items()
                    }
                )
            health_paced = paced(url, ["/healthz"], args.rate, args.seconds)
            forecast_paced = paced(url, paths, args.rate, args.seconds)
            reference_paced = paced(reference_url, paths, min(args.rate, 20.0), args.seconds)
            batch_times = timed(url, "POST", "/v1/forecast", batch, runs=50)
            radius_times = timed(url, "GET", radius_path, runs=200)
            memory = worker_memory(stack, "provinces")

        print("starting a stack over the municipalities ...", flush=True)
        municipal = stack_settings(base / "municipalities", tracts=str(MUNICIPALITIES))
        municipalities = TractIndex.from_file(MUNICIPALITIES)
        publish(Path(municipal.store), synthetic_bundle(municipalities))
        hits = len(municipalities.tracts_within_radius(*MILAN, 50.0))
        with running(municipal) as (url, municipal_stack):
            municipal_times = timed(url, "GET", radius_path, runs=200)
            memory |= worker_memory(municipal_stack, "municipalities")

    def median_ratio(name: str, over: str) -> float:
        return statistics.median(r[name].rps / r[over].rps for r in rounds)

    middle = sorted(rounds, key=lambda r: r["fresh"].rps / r["health"].rps)[len(rounds) // 2]
    report = [
        "",
        f"serving {serving}, Keras reference {version}; {args.workers} api + {args.workers} geo "
        "workers (gthread, 4 threads)",
        "through nginx on 127.0.0.1; shared 2-core machine, under load from other work",
        f"saturated: wrk, 1 thread, {args.connections} connections, {args.seconds} s each, "
        f"{args.rounds} interleaved rounds; the round of median ratio shown",
        f"  {'':<50}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}",
        load_line("GET /healthz", middle["health"]),
        load_line(f"GET /v1/forecast, {len(points)} points repeated", middle["forecast"]),
        load_line(f"GET /v1/forecast, {len(fresh):,} distinct points", middle["fresh"]),
        load_line("Keras reference, model.predict per request", middle["reference"]),
        "  forecast / healthz, median of rounds: "
        f"{median_ratio('forecast', 'health'):.2f}x "
        f"({median_ratio('fresh', 'health'):.2f}x with distinct points; goal >= 0.4)",
        "  forecast / Keras reference, median of rounds: "
        f"{median_ratio('forecast', 'reference'):.0f}x "
        f"({median_ratio('fresh', 'reference'):.0f}x with distinct points; goal >= 50)",
        "  every round (healthz, repeated, distinct, reference req/s): "
        + "; ".join(
            " / ".join(
                f"{r[name].rps:.0f}" for name in ("health", "forecast", "fresh", "reference")
            )
            for r in rounds
        ),
        f"paced: {args.rate:.0f} requests/s for {args.seconds} s (latency from when each was due)",
        load_line("GET /healthz", health_paced),
        load_line("GET /v1/forecast", forecast_paced) + "   (goal p99 <= 10 ms)",
        load_line(f"Keras reference at {min(args.rate, 20.0):.0f} requests/s", reference_paced),
        "sequential, one keep-alive connection:",
        f"  POST /v1/forecast, 1,000 points:             {describe(batch_times)}   (goal <= 50 ms)",
        f"  GET /v1/stats/radius 50 km, provinces:       {describe(radius_times)}",
        f"  GET /v1/stats/radius 50 km, municipalities:  {describe(municipal_times)}"
        f"   ({hits} tracts; goal <= 5 ms)",
        "memory per worker (RSS / PSS MB):",
    ]
    print("\n".join(report + memory_lines(memory)))


if __name__ == "__main__":
    main()
