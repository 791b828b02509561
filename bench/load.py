"""Load generators for the serving benchmarks, loopback only, bounded in time and requests.

`saturate` runs wrk (Debian's `wrk`) for the most requests per second a URL answers;
`paced` sends a fixed rate from an asyncio client, measuring each latency from the moment the
request was due (so a slow answer also delays, and is charged to, the requests behind it).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Load:
    requests: int
    errors: int  # transport errors and answers outside 2xx
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _loopback(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError(f"benchmarks only load loopback addresses, not {parts.hostname}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, path or "/"


def saturate(url: str, paths: list[str], seconds: int = 10, connections: int = 16) -> Load:
    """wrk, one thread, `connections` keep-alive connections, cycling through `paths`."""
    host, port, _ = _loopback(url)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    quoted = ", ".join('"' + path.replace('"', "") + '"' for path in paths)
    script = (
        f"local paths = {{{quoted}}}\nlocal i = 0\n"
        'request = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua.name,
             f"http://{host}:{port}/"],
            capture_output=True, text=True, timeout=seconds + 30, check=True,
        ).stdout  # fmt: skip
    return _parse_wrk(out, seconds)


def _parse_wrk(out: str, seconds: int) -> Load:
    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        return float(match.group(1)) * UNITS[match.group(2)] if match else float("nan")

    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    elapsed = float(total.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    maximum = re.search(r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", out)
    return Load(
        requests=int(total.group(1)),
        errors=failed,
        seconds=elapsed or seconds,
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        max_ms=float(maximum.group(1)) * UNITS[maximum.group(2)] if maximum else float("nan"),
    )


def paced(url: str, paths: list[str], rate: float, seconds: float, connections: int = 16) -> Load:
    """`rate` requests per second for `seconds`, open loop, over keep-alive connections."""
    host, port, _ = _loopback(url)
    return asyncio.run(_paced(host, port, paths, rate, seconds, connections))


async def _paced(
    host: str, port: int, paths: list[str], rate: float, seconds: float, connections: int
) -> Load:
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    next_index = 0
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal next_index, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < total:
                index = next_index
                next_index += 1
                due = start + index / rate
                await asyncio.sleep(max(0.0, due - loop.time()))
                path = paths[index % len(paths)]
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                status = await _read_response(reader)
                latencies.append((loop.time() - due) * 1000)
                if not 200 <= status < 300:
                    errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(connection() for _ in range(connections))), timeout=seconds * 3 + 30
    )
    elapsed = time.perf_counter() - began - 0.2
    ordered = sorted(latencies)
    return Load(
        requests=len(ordered),
        errors=errors,
        seconds=elapsed,
        p50_ms=statistics.median(ordered),
        p99_ms=ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        max_ms=ordered[-1],
    )


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = (line.partition(":") for line in lines[1:] if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status
