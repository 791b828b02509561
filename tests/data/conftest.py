"""Fixtures of the data tests: the Italy index, Italy split into the portal's daily files, a
local HTTP server publishing them like the portal, and a layer without geometry."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

from tractcast.geo.index import Tract, TractIndex

DAILY_NAME = "dpc-covid19-ita-province-{day}.csv"
NUTS_FROM = "20210115"  # the daily files gained three NUTS columns that day


@pytest.fixture(scope="session")
def italy_index(italy_provinces: Path) -> TractIndex:
    return TractIndex.from_file(italy_provinces, id_field="codice_provincia")


@pytest.fixture(scope="session")
def italy_days(italy_cases: Path) -> dict[str, bytes]:
    """Day (YYYYMMDD) -> the portal's daily file, rebuilt from the combined Italy file.

    Files before 2021-01-15 have the original 11 columns (the combined file padded them).
    """
    lines = gzip.decompress(italy_cases.read_bytes()).split(b"\n")
    header, rows = lines[0], [line for line in lines[1:] if line]
    short_header = b",".join(header.split(b",")[:11])
    by_day: dict[str, list[bytes]] = {}
    for row in rows:
        by_day.setdefault(row[:10].replace(b"-", b"").decode(), []).append(row)
    files = {}
    for day, day_rows in by_day.items():
        if day < NUTS_FROM:
            body = [short_header, *(r[:-3] if r.endswith(b",,,") else r for r in day_rows)]
        else:
            body = [header, *day_rows]
        files[day] = b"\n".join(body) + b"\n"
    return files


def publish_days(directory: Path, days: dict[str, bytes], which: list[str]) -> list[Path]:
    """Write some daily files into a directory under their real portal names."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in which:
        path = directory / DAILY_NAME.format(day=day)
        path.write_bytes(days[day])
        paths.append(path)
    return paths


@dataclass
class Portal:
    """A local HTTP server over a directory: ETag, Last-Modified, 304, directory index."""

    root: Path
    server: ThreadingHTTPServer
    log: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def downloads(self, suffix: str = ".csv") -> list[str]:
        """Paths of data files sent with a body (GET answered 200)."""
        return [p for m, p, s in self.log if m == "GET" and s == 200 and p.endswith(suffix)]


def portal_handler(portal: Portal) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.answer(with_body=True)

        def do_HEAD(self) -> None:
            self.answer(with_body=False)

        def answer(self, with_body: bool) -> None:
            relative = unquote(urlsplit(self.path).path).lstrip("/")
            path = (portal.root / relative).resolve()
            if portal.root.resolve() not in (path, *path.parents):
                status, headers, body = 404, {}, b""
            elif path.is_dir():
                status, headers, body = 200, {"Content-Type": "text/html"}, listing(path)
            elif path.is_file():
                status, headers, body = self.file_answer(path)
            else:
                status, headers, body = 404, {"Content-Type": "text/plain"}, b"not found"
            portal.log.append((self.command, "/" + relative, status))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body and status == 200:
                self.wfile.write(body)

        def file_answer(self, path: Path) -> tuple[int, dict[str, str], bytes]:
            data = path.read_bytes()
            etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
            modified = formatdate(path.stat().st_mtime, usegmt=True)
            headers = {"ETag": etag, "Last-Modified": modified, "Content-Type": "text/csv"}
            if self.headers.get("If-None-Match") == etag:
                return 304, headers, b""
            since = self.headers.get("If-Modified-Since")
            if since and not self.headers.get("If-None-Match"):
                if int(path.stat().st_mtime) <= parsedate_to_datetime(since).timestamp():
                    return 304, headers, b""
            return 200, headers, data

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def listing(directory: Path) -> bytes:
    items = "".join(
        f'<li><a href="{quote(p.name)}{"/" if p.is_dir() else ""}">{escape(p.name)}</a></li>'
        for p in sorted(directory.iterdir())
    )
    return f"<!DOCTYPE html><html><body><ul>{items}</ul></body></html>".encode()


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    """A portal on 127.0.0.1 serving tmp_path/site; stopped after the test."""
    root = tmp_path / "site"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    served = Portal(root, server)
    server.RequestHandlerClass = portal_handler(served)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class StandInLayer:
    """A tract layer without geometry: what key-based ingestion needs from TractIndex."""

    rows: list[dict[str, Any]]
    id_field: str = "code"
    name_field: str = "name"
    tracts: list[Tract] = field(init=False)

    def __post_init__(self) -> None:
        self.tracts = [Tract(str(r[self.id_field]), str(r[self.name_field])) for r in self.rows]

    def properties(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]


@pytest.fixture
def three_provinces() -> StandInLayer:
    return StandInLayer(
        [
            {"code": "001", "name": "Torino", "sigla": "TO"},
            {"code": "015", "name": "Milano", "sigla": "MI"},
            {"code": "058", "name": "Roma", "sigla": "RM"},
        ]
    )
