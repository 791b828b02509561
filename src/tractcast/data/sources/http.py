"""HTTP(S) sources: one file, or every data file linked from a directory index."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from tractcast.data.sources.base import (
    CHUNK,
    Fetched,
    Probe,
    State,
    entries_of,
    is_data_name,
    safe_name,
)
from tractcast.errors import Unavailable


class LinkParser(HTMLParser):
    """Collects the href of every <a> element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower() == "a":
            self.hrefs.extend(value for key, value in attrs if key.lower() == "href" and value)


def index_links(page: str, base_url: str) -> dict[str, str]:
    """Entry name -> absolute URL of the index page's links to data files below its folder."""
    parser = LinkParser()
    parser.feed(page)
    base = base_url if base_url.endswith("/") else base_url.rsplit("/", 1)[0] + "/"
    base_path = urlsplit(base).path
    links: dict[str, str] = {}
    for href in parser.hrefs:
        url = urljoin(base_url, href.strip()).split("#", 1)[0]
        parts = urlsplit(url)
        if parts.netloc != urlsplit(base).netloc or not parts.path.startswith(base_path):
            continue
        name = unquote(parts.path[len(base_path) :])
        if name and not name.endswith("/") and is_data_name(name):
            links[safe_name(name)] = url
    return dict(sorted(links.items()))


def last(names: list[str], n: int) -> list[str]:
    """The last n names (none when n is 0)."""
    return names[-n:] if n > 0 else []


def conditional_headers(entry: dict[str, Any] | None) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from the validators of a previous response."""
    headers = {}
    if entry and entry.get("etag"):
        headers["If-None-Match"] = entry["etag"]
    if entry and entry.get("last_modified"):
        headers["If-Modified-Since"] = entry["last_modified"]
    return headers


def validators(response: Any) -> dict[str, Any]:
    found = {
        "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
    }
    return {key: value for key, value in found.items() if value}


def same_validators(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two responses' validators prove the same content (a strong ETag, or date)."""
    if old.get("etag") and new.get("etag"):
        return old["etag"] == new["etag"] and not new["etag"].startswith("W/")
    return bool(old.get("last_modified")) and old.get("last_modified") == new.get("last_modified")


@dataclass
class HttpClient:
    """requests with a timeout and a request counter; HTTP failures become Unavailable."""

    timeout: float = 30.0
    session: Any = None
    requests: int = 0

    def __post_init__(self) -> None:
        if self.session is None:
            import requests

            self.session = requests.Session()

    def call(self, method: str, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        import requests

        self.requests += 1
        try:
            return self.session.request(
                method, url, headers=headers or {}, timeout=self.timeout, **kw
            )
        except requests.RequestException as exc:
            raise Unavailable(f"the data source {url} cannot be reached: {exc}") from exc

    def download(self, url: str, target: Path, entry: dict[str, Any] | None) -> dict[str, Any]:
        """GET into target, conditional when the bytes are known; returns the new entry
        ({} when not modified)."""
        known = entry if entry and "sha256" in entry else None
        with self.call("GET", url, conditional_headers(known), stream=True) as response:
            if response.status_code == 304 and known:
                return {}
            if response.status_code != 200:
                raise Unavailable(f"the data source {url} answered HTTP {response.status_code}")
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with open(target, "wb") as stream:
                for chunk in response.iter_content(CHUNK):
                    digest.update(chunk)
                    stream.write(chunk)
            return {**validators(response), "url": url, "sha256": digest.hexdigest()}

    def revalidate(self, url: str, entry: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A conditional HEAD: ("same" | "changed" | "gone", validators now)."""
        response = self.call("HEAD", url, conditional_headers(entry), allow_redirects=True)
        if response.status_code == 304:
            return "same", {}
        if response.status_code in (404, 410):
            return "gone", {}
        if response.status_code == 200:
            now = validators(response)
            return ("same" if same_validators(entry, now) else "changed"), now
        return "changed", {}  # HEAD refused or failed: let the conditional GET decide


class HttpFiles:
    """Shared fetch of HTTP sources: a conditional GET per changed entry."""

    uri: str
    client: HttpClient

    def fetch(self, probe: Probe, into: Path) -> Fetched:
        before = self.client.requests
        entries = entries_of(probe.state)
        written = []
        for name in probe.changed:
            entry = entries[name]
            fresh = self.client.download(entry["url"], Path(into) / safe_name(name), entry)
            if fresh:
                entries[name] = {**entry, **fresh}
                written.append(name)
        state = {**probe.state, "entries": entries}
        return Fetched(state, tuple(written), self.client.requests - before)

    def revalidate_entries(
        self, entries: dict[str, dict[str, Any]], names: Iterable[str]
    ) -> tuple[list[str], list[str]]:
        """Conditional HEAD of some known entries; (changed, gone) names; validators refreshed."""
        changed, gone = [], []
        for name in names:
            verdict, _ = self.client.revalidate(entries[name]["url"], entries[name])
            if verdict == "gone":
                gone.append(name)
            elif verdict == "changed":
                changed.append(name)
                entries[name] = {"url": entries[name]["url"]}  # GET it unconditionally
        return changed, gone


class HttpSource(HttpFiles):
    """One file at a URL, or a directory index page (HTML) whose links name the data files."""

    def __init__(
        self, url: str, *, recheck: int = 7, timeout: float = 30.0, session: Any = None
    ) -> None:
        self.uri = url
        self.recheck = recheck
        self.client = HttpClient(timeout=timeout, session=session)

    def probe(self, previous: State | None = None) -> Probe:
        before = self.client.requests
        mode = (previous or {}).get("mode") or self.detect_mode()
        if mode == "index":
            probe = self.probe_index(previous)
        else:
            probe = self.probe_file(previous)
        return Probe(probe.state, probe.changed, probe.removed, self.client.requests - before)

    def detect_mode(self) -> str:
        """ "index" when the URL is an HTML page linking to data files, else "file"."""
        if self.uri.endswith("/"):
            return "index"
        response = self.client.call("HEAD", self.uri, allow_redirects=True)
        if "html" not in response.headers.get("Content-Type", "").lower():
            return "file"
        page = self.client.call("GET", self.uri)
        return "index" if page.ok and index_links(page.text, page.url or self.uri) else "file"

    def probe_file(self, previous: State | None) -> Probe:
        name = safe_name(PurePosixPath(urlsplit(self.uri).path).name or "data")
        old = entries_of(previous).get(name)
        entry = {"url": self.uri, **(old or {})}
        if old is None or "sha256" not in old:
            return Probe({"mode": "file", "entries": {name: entry}}, (name,))
        entries = {name: entry}
        changed, gone = self.revalidate_entries(entries, [name])
        if gone:
            raise Unavailable(f"the data source {self.uri} is gone (HTTP 404)")
        return Probe({"mode": "file", "entries": entries}, tuple(changed))

    def probe_index(self, previous: State | None) -> Probe:
        """One conditional GET of the index; new links are fetched, recent ones revalidated."""
        old_entries = entries_of(previous)
        old_index = (previous or {}).get("index", {})
        response = self.client.call("GET", self.uri, conditional_headers(old_index))
        if response.status_code == 304:
            links = {name: entry["url"] for name, entry in old_entries.items()}
            index = old_index
        elif response.status_code == 200:
            digest = hashlib.sha256(response.content).hexdigest()
            index = {**validators(response), "sha256": digest}
            if digest == old_index.get("sha256"):
                links = {name: entry["url"] for name, entry in old_entries.items()}
            else:
                links = index_links(response.text, response.url or self.uri)
        else:
            raise Unavailable(f"the data source {self.uri} answered HTTP {response.status_code}")
        if not links:
            raise Unavailable(f"the index page {self.uri} links to no data file")
        entries = {name: {**old_entries.get(name, {}), "url": url} for name, url in links.items()}
        new = [name for name in entries if "sha256" not in entries[name]]
        known = [name for name in entries if name not in new]
        changed, gone = self.revalidate_entries(
            entries, known[-self.recheck :] if self.recheck else []
        )
        for name in gone:
            entries.pop(name)
        removed = sorted((set(old_entries) - set(entries)) | set(gone))
        state = {"mode": "index", "index": index, "entries": entries}
        return Probe(state, tuple(sorted(new + changed)), tuple(removed))
