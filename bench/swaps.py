"""Zero-downtime swaps: load on /v1/forecast through nginx while promoting and rolling back.

1. Trains twice on a slice of the Italy provinces data (like the end-to-end test): the first
   run's champion A, and the second run's best candidate B (promoted explicitly, since the gate
   keeps A on the same data). Starts the real stack (gunicorn per service, nginx).
2. A paced client (keep-alive connections, loopback) sends GET /v1/forecast at a fixed rate:
   first for a steady phase, then while an admin promotes B and rolls back to A through nginx's
   registry endpoints, `--cycles` times each.
3. Prints failed requests (transport errors and non-200 answers), p99 latency (from when each
   request was due) steady and during swaps, every model_version seen, and how long after each
   swap answered the API processes served the new version.

    .venv/bin/python -m bench.swaps [--cycles 100] [--rate 100] [--steady 30] [--gap 0.6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench.serving import (
    BENCH_RATE_LIMIT,
    PROVINCES,
    forecast_paths,
    inside_points,
    running,
    stack_settings,
    train,
    write_cases_slice,
)

TOKEN = "bench-token"
WARM_UP = 2.0  # seconds of load before measuring: connections open, pacing settled


@dataclass
class Answer:
    due: float  # when the request was due (monotonic seconds)
    latency_ms: float
    status: int
    model_version: str | None


@dataclass
class Recorder:
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: status, body (Content-Length or chunked), whether it closes."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = (line.partition(":") for line in lines[1:] if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    closes = headers.get("connection", "").lower() == "close"
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"])), closes
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                break
    return status, body, closes


async def _paced(
    url: str, paths: list[str], rate: float, stop: threading.Event, out: Recorder, connections: int
) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    counter = 0

    async def connection() -> None:
        nonlocal counter
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not stop.is_set():
                index = counter
                counter += 1
                due = start + index / rate
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(
                    f"GET {paths[index % len(paths)]} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
                )
                try:
                    status, body, closes = await asyncio.wait_for(_read_answer(reader), timeout=10)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    out.errors.append(f"{type(exc).__name__}: {exc}")
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                version = None
                if status == 200:
                    version = json.loads(body).get("model_version")
                out.answers.append(Answer(due, (loop.time() - due) * 1000, status, version))
                if closes:  # nginx ends a keep-alive connection after keepalive_requests
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))


class Load:
    """The paced client on its own thread (its own event loop) until stopped."""

    def __init__(self, url: str, paths: list[str], rate: float, connections: int = 8) -> None:
        self.recorder = Recorder()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(
                _paced(url, paths, rate, self._stop, self.recorder, connections)
            ),
            daemon=True,
        )

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self.recorder

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def p99(answers: list[Answer]) -> float:
    ordered = sorted(a.latency_ms for a in answers)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def inside(answer: Answer, window: tuple[float, float]) -> bool:
    return window[0] <= answer.due <= window[1]


def swap(session: requests.Session, url: str, kind: str, body: dict) -> str:
    """One promotion or rollback through nginx; the version serving after it."""
    response = session.post(
        f"{url}/v1/admin/{kind}",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["current"]["version"])


def pickup_seconds(answers: list[Answer], swaps: list[tuple[float, str]]) -> list[float]:
    """For each swap: seconds from its answer to the first request due after it that saw it."""
    delays = []
    ordered = sorted(answers, key=lambda a: a.due)
    for at, version in swaps:
        first = next((a.due for a in ordered if a.due >= at and a.model_version == version), None)
        if first is not None:
            delays.append(first - at)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=100, help="promote + rollback pairs")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--steady", type=float, default=30.0, help="seconds of steady load")
    parser.add_argument("--gap", type=float, default=0.6, help="seconds between swaps")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the api")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tractcast-swaps-") as tmp:
        base = Path(tmp)
        cases = base / "italy-slice.csv.gz"
        write_cases_slice(cases)
        settings = stack_settings(
            base,
            data_source=str(cases),
            tracts=str(PROVINCES),
            epochs=3,
            workers=args.workers,
            admin_token=TOKEN,
            rate_limit=BENCH_RATE_LIMIT,
            admin_rate_limit=BENCH_RATE_LIMIT,
        )
        began = time.monotonic()
        first = train(settings)
        second = train(settings)
        a, b = first["champion"], second["candidate"]
        if b == a:
            raise RuntimeError("the second training registered no other version")
        print(f"trained {a} and {b} in {time.monotonic() - began:.0f} s", flush=True)
        paths = forecast_paths(inside_points(PROVINCES, 200))
        with running(settings) as (url, _stack), requests.Session() as session:
            with Load(url, paths, args.rate) as steady:
                time.sleep(WARM_UP)
                steady_window = (time.monotonic(), time.monotonic() + args.steady)
                time.sleep(args.steady)
            swaps: list[tuple[float, str]] = []
            with Load(url, paths, args.rate) as during:
                time.sleep(WARM_UP)
                started = time.monotonic()
                for _ in range(args.cycles):
                    for kind, body, expected in (
                        ("promote", {"version": b, "reason": "bench"}, b),
                        ("rollback", {"reason": "bench"}, a),
                    ):
                        serving = swap(session, url, kind, body)
                        if serving != expected:
                            raise RuntimeError(f"{kind} left {serving} serving, not {expected}")
                        swaps.append((time.monotonic(), expected))
                        time.sleep(args.gap)
                swap_window = (started, time.monotonic())
                time.sleep(1.0)
    report(steady, during, swaps, {a, b}, steady_window, swap_window, args)


def report(
    steady: Recorder,
    during: Recorder,
    swaps: list[tuple[float, str]],
    in_play: set[str],
    steady_window: tuple[float, float],
    swap_window: tuple[float, float],
    args: argparse.Namespace,
) -> None:
    """Failures count every answer (warm-up included); p99 only those due inside each window."""
    failed = sum(a.status != 200 for a in during.answers) + len(during.errors)
    failed_steady = sum(a.status != 200 for a in steady.answers) + len(steady.errors)
    seen = {a.model_version for a in during.answers if a.model_version}
    pickups = pickup_seconds(during.answers, swaps)
    steady_p99 = p99([a for a in steady.answers if inside(a, steady_window)])
    swap_p99 = p99([a for a in during.answers if inside(a, swap_window)])
    swap_seconds = swap_window[1] - swap_window[0]
    print(f"\nload: {args.rate:.0f} requests/s on GET /v1/forecast through nginx, 200 points")
    print(
        f"steady:       {len(steady.answers):>5} answers, {failed_steady} failed, "
        f"p99 {steady_p99:.1f} ms"
    )
    print(
        f"during swaps: {len(during.answers):>5} answers, {failed} failed, p99 {swap_p99:.1f} ms "
        f"({swap_p99 / steady_p99:.2f}x steady; goal <= 2x), {len(swaps)} swaps "
        f"({args.cycles} promotions + {args.cycles} rollbacks) in {swap_seconds:.0f} s"
    )
    print(f"model_version seen: {sorted(seen)} (in play: {sorted(in_play)}; ok: {seen <= in_play})")
    if pickups:
        print(
            f"new version served after a swap: median {statistics.median(pickups) * 1000:.0f} ms, "
            f"max {max(pickups) * 1000:.0f} ms over {len(pickups)} swaps (goal <= 1 s)"
        )
    if during.errors:
        print("errors:", *sorted(set(during.errors))[:5], sep="\n  ")


if __name__ == "__main__":
    main()
