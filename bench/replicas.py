"""Forecast throughput with 1, 2 and 3 API replicas behind one nginx, on this machine.

A store serving a synthetic bundle for every Italian province (no training), the real stack on
free loopback ports (bench.serving.running: gunicorn per service, nginx), and three API
replicas beside it: separate gunicorn masters started as the stack starts its api, each on its
own port with `--workers` workers, all reading the same store and calling the same geo. For each
setting, nginx's api upstream lists the first 1, 2 or 3 replicas instead of the stack's own api
(the config the runner renders, reloaded), and wrk (a separate process, C, so the client
takes no server's GIL) saturates `GET /v1/forecast` over distinct random points inside the layer.
Settings run in interleaved rounds (1, 2, 3 then 3, 2, 1 ...); each ratio to 1 replica is taken
within a round. Per run: requests/s, p50/p99, errors, how nginx spread the requests over the
replicas (its access log), the 1-minute load average, and how much of the 2 cores went to this
bench (stack and wrk) and how much to other work on the machine; requests/s per core the bench
used says what the replicas did with the CPU they got.

    .venv/bin/python -m bench.replicas [--seconds 20] [--rounds 3] [--workers 1] [--connections 8]
        [--geo-workers 2] [--points 20000] [--max-replicas 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.load import Load, saturate
from bench.serving import (
    PROVINCES,
    forecast_paths,
    free_port,
    inside_points,
    publish,
    running,
    stack_settings,
    synthetic_bundle,
    workers_of,
)
from tractcast.geo.index import TractIndex
from tractcast.nginxconf import connect_host, write_nginx_conf
from tractcast.runner import Stack, start_web_app, wait_ready
from tractcast.settings import Settings

API_APP = "services.api.wsgi:app"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    replicas: int
    load: Load
    spread: dict[str, int]  # requests nginx sent to each replica's address
    load_average: float  # 1 minute, read at the end of the run
    bench_cores: float  # cores used by the stack and wrk during the run
    other_cores: float  # cores used by everything else on the machine

    @property
    def per_core(self) -> float:
        """Requests per second for each core the bench itself used (nginx, api, geo, wrk)."""
        return self.load.rps / self.bench_cores if self.bench_cores else 0.0


def start_replicas(stack: Stack, settings: Settings, count: int, workers: int) -> list[int]:
    """Ports of `count` api replicas: gunicorn masters started as the stack starts its api."""
    ports = [free_port() for _ in range(count)]
    for number, port in enumerate(ports, start=1):
        start_web_app(stack, settings, f"api-{number}", API_APP, port, workers)
    for port in ports:
        wait_ready(f"http://127.0.0.1:{port}", stack, timeout=180)
    return ports


def point_nginx_at(stack: Stack, settings: Settings, ports: list[int]) -> None:
    """Re-render nginx.conf with the api upstream listing `ports`, reload, wait for new workers."""
    conf = write_nginx_conf(settings, stack.run_dir / "nginx")
    host = connect_host(settings.host)
    one = f"server {host}:{settings.api_port};"
    text = conf.read_text()
    if text.count(one) != 1:
        raise RuntimeError(f"expected one '{one}' (the api upstream) in {conf}")
    servers = "\n        ".join(f"server {host}:{port};" for port in ports)
    conf.write_text(text.replace(one, servers))
    master = stack.processes["nginx"].pid
    before = set(workers_of(master))
    os.kill(master, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while True:
        now = set(workers_of(master))
        if now and not now & before:
            return
        if time.monotonic() > deadline:
            error_log = (stack.run_dir / "nginx" / "error.log").read_text()[-2000:]
            raise RuntimeError(f"nginx did not reload onto {len(ports)} replicas:\n{error_log}")
        time.sleep(0.1)


def upstream_counts(access_log: Path, offset: int) -> dict[str, int]:
    """Forecast requests per upstream address in nginx's access log from byte `offset` on."""
    counts: Counter[str] = Counter()
    with access_log.open("rb") as log:
        log.seek(offset)
        for line in log:
            entry = json.loads(line)
            if entry["uri"].startswith("/v1/forecast"):
                counts[entry["upstream"]] += 1
    return dict(counts)


def busy_cores_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores, /proc/stat)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK


def sessions_cpu_seconds(sessions: set[int]) -> float:
    """CPU seconds (user + system) of the live processes in the given sessions."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sessions:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def measure(
    stack: Stack, url: str, paths: list[str], replicas: int, seconds: int, connections: int
) -> Run:
    """One saturating run through nginx, with the CPU it took and the CPU others took meanwhile."""
    access_log = stack.run_dir / "nginx" / "access.log"
    saturate(url, paths, 2, connections)  # warm-up: connections, each worker's first answers
    sessions = {proc.pid for proc in stack.processes.values()}
    offset = access_log.stat().st_size
    busy, ours, wrk = busy_cores_seconds(), sessions_cpu_seconds(sessions), _children_cpu()
    began = time.monotonic()
    load = saturate(url, paths, seconds, connections)
    elapsed = time.monotonic() - began
    busy = busy_cores_seconds() - busy
    ours = sessions_cpu_seconds(sessions) - ours + _children_cpu() - wrk
    return Run(
        replicas=replicas,
        load=load,
        spread=upstream_counts(access_log, offset),
        load_average=os.getloadavg()[0],
        bench_cores=ours / elapsed,
        other_cores=max(0.0, busy - ours) / elapsed,
    )


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def spread_text(run: Run, ports: list[int]) -> str:
    total = sum(run.spread.values()) or 1
    shares = [run.spread.get(f"127.0.0.1:{port}", 0) / total for port in ports[: run.replicas]]
    return "/".join(f"{share:.0%}" for share in shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="per saturating run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of 1, 2, 3")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per replica")
    parser.add_argument("--geo-workers", type=int, default=2, help="of the one geo service")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--points", type=int, default=20_000, help="distinct points asked")
    parser.add_argument("--max-replicas", type=int, default=3)
    args = parser.parse_args()
    settings_of_run = list(range(1, args.max_replicas + 1))

    idle_load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tractcast-bench-replicas-") as tmp:
        base = Path(tmp)
        settings = stack_settings(base / "stack", tracts=str(PROVINCES), workers=args.geo_workers)
        publish(Path(settings.store), synthetic_bundle(TractIndex.from_file(PROVINCES)))
        paths = forecast_paths(inside_points(PROVINCES, args.points, seed=1))
        print(f"starting the stack and {args.max_replicas} api replicas ...", flush=True)
        # running() stops every process of the stack, the added replicas too, by their own PIDs.
        with running(settings) as (url, stack):
            ports = start_replicas(stack, settings, args.max_replicas, args.workers)
            rounds: list[dict[int, Run]] = []
            for number in range(args.rounds):
                order = settings_of_run if number % 2 == 0 else settings_of_run[::-1]
                runs = {}
                for replicas in order:
                    print(f"round {number + 1}: {replicas} replica(s) ...", flush=True)
                    point_nginx_at(stack, settings, ports[:replicas])
                    runs[replicas] = measure(
                        stack, url, paths, replicas, args.seconds, args.connections
                    )
                rounds.append(runs)

    def median(replicas: int, value: str) -> float:
        return statistics.median(getattr(r[replicas].load, value) for r in rounds)

    def per_core(replicas: int) -> float:
        return statistics.median(r[replicas].per_core for r in rounds)

    def ratio(replicas: int) -> float:
        return statistics.median(r[replicas].load.rps / r[1].load.rps for r in rounds)

    print(
        "",
        f"GET /v1/forecast through nginx, {len(paths):,} distinct points in the 107 provinces; "
        f"each replica a gunicorn master with {args.workers} worker(s) (gthread, 4 threads); "
        f"{args.geo_workers} geo workers shared; wrk, 1 thread, {args.connections} connections, "
        f"{args.seconds} s per run, {args.rounds} interleaved round(s); medians over rounds",
        f"2-core machine shared with other jobs: load average {idle_load[0]:.1f} / "
        f"{idle_load[1]:.1f} (1 / 5 min) before the bench started",
        f"{'replicas':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'x 1':>7}"
        f"{'req/s per bench core':>22}",
        *(
            f"{n:>9}{median(n, 'rps'):>9.0f}{median(n, 'p50_ms'):>9.2f}"
            f"{median(n, 'p99_ms'):>9.2f}{sum(r[n].load.errors for r in rounds):>8}"
            f"{ratio(n):>7.2f}{per_core(n):>22.0f}"
            for n in settings_of_run
        ),
        "every run (req/s; requests per replica; load average 1 min; cores used by this bench "
        "/ by other work):",
        *(
            f"  round {number + 1}, {n} replica(s): {run.load.rps:.0f} req/s; "
            f"{spread_text(run, ports)}; load {run.load_average:.1f}; "
            f"cores {run.bench_cores:.2f} / {run.other_cores:.2f}; {run.per_core:.0f} per core"
            for number, runs in enumerate(rounds)
            for n, run in runs.items()
        ),
        sep="\n",
    )


if __name__ == "__main__":
    main()
