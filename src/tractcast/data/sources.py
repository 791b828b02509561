"""Where case data comes from: local files, directories and globs, HTTP(S) and S3, one interface.

A source is a set of named entries (files). Its state remembers, per entry, the validators seen
last time (ETag, Last-Modified, size, mtime) and the SHA-256 of its bytes, so `probe` can tell
what changed without downloading anything, and `fetch` downloads only the entries that changed.
"""

from __future__ import annotations

import glob
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

from tractcast.errors import InvalidInput, Unavailable

DATA_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".psv", ".dat")
ARCHIVE_SUFFIXES = (".gz", ".zip")
CHUNK = 1 << 20
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_GLOB = re.compile(r"[*?\[]")
_TEMPLATE = re.compile(r"\{date(?::([^}]*))?\}")

State = dict[str, Any]  # {"entries": {name: {validators..., "sha256": hex}}, ...} (JSON-able)


@dataclass(frozen=True)
class Probe:
    """What a cheap check found: the state now, the entries to download and those now gone."""

    state: State
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    requests: int = 0

    @property
    def unchanged(self) -> bool:
        return not self.changed and not self.removed


@dataclass(frozen=True)
class Fetched:
    """The state after a fetch, with the SHA-256 of every entry, and the entries written."""

    state: State
    written: tuple[str, ...] = ()
    requests: int = 0


class Source(Protocol):
    """A data source: `probe` is cheap and downloads nothing; `fetch` writes changed entries."""

    uri: str

    def probe(self, previous: State | None = None) -> Probe: ...

    def fetch(self, probe: Probe, into: Path) -> Fetched: ...


def open_source(uri: str | Path, **options: Any) -> Source:
    """The backend for a URI: s3://, http(s):// (file, directory index or {date} template),
    a glob, a directory or a file."""
    text = str(uri).strip()
    if not text:
        raise InvalidInput("the data source is empty")
    scheme = text.split("://", 1)[0].lower() if _URL.match(text) else ""
    if scheme == "s3":
        return S3Source(text, **options)
    if scheme in {"http", "https"}:
        if _TEMPLATE.search(text):
            return HttpTemplateSource(text, **options)
        return HttpSource(text, **options)
    if scheme == "file":
        text = unquote(urlsplit(text).path)
    elif scheme:
        raise InvalidInput(f"unsupported data source scheme {scheme!r} in {text!r}")
    path = Path(text).expanduser()
    if _GLOB.search(text) or path.is_dir():
        return DirectorySource(text)
    return LocalFileSource(path)


def is_remote(uri: str | Path) -> bool:
    """Whether a source URI needs downloading (HTTP, S3) rather than reading in place."""
    text = str(uri)
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


def is_data_name(name: str) -> bool:
    """Whether a file name looks like tabular data (CSV-like, possibly gzip or zip)."""
    lower = PurePosixPath(name).name.lower()
    if lower.startswith("."):
        return False
    if lower.endswith(".zip"):
        return True
    if lower.endswith(".gz"):
        lower = lower[:-3]
    return lower.endswith(DATA_SUFFIXES)


def safe_name(name: str) -> str:
    """A relative POSIX path inside a snapshot; refuses absolute paths and '..'."""
    parts = [part for part in PurePosixPath(name.replace("\\", "/")).parts if part not in ("", ".")]
    if not parts or parts[0] == "/" or ".." in parts:
        raise InvalidInput(f"unsafe entry name {name!r}")
    return "/".join(parts)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot_version(hashes: dict[str, str]) -> str:
    """The data version of a snapshot: the file's hash for one file, else the manifest's hash.

    16 hex characters; the same bytes under the same names always give the same version.
    """
    if not hashes:
        raise InvalidInput("a snapshot needs at least one file")
    if len(hashes) == 1:
        return next(iter(hashes.values()))[:16]
    manifest = "".join(f"{name}\t{digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(manifest.encode()).hexdigest()[:16]


def entries_of(state: State | None) -> dict[str, dict[str, Any]]:
    return dict((state or {}).get("entries", {}))


def state_hashes(state: State) -> dict[str, str]:
    """Entry name -> SHA-256 for every entry of a (fetched) state."""
    return {name: entry["sha256"] for name, entry in entries_of(state).items()}


# --- local files ---------------------------------------------------------------------------


class LocalFiles:
    """Shared probe/fetch of sources whose entries are files on this machine."""

    uri: str

    def files(self) -> dict[str, Path]:
        raise NotImplementedError

    def probe(self, previous: State | None = None) -> Probe:
        """Size and mtime first; the content hash only for files whose size or mtime moved."""
        old_entries = entries_of(previous)
        entries: dict[str, dict[str, Any]] = {}
        changed = []
        for name, path in self.files().items():
            stat = path.stat()
            entry: dict[str, Any] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            old = old_entries.get(name, {})
            same_stat = (old.get("size"), old.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns)
            if same_stat and "sha256" in old:
                entry["sha256"] = old["sha256"]
            else:
                entry["sha256"] = sha256_file(path)
                if entry["sha256"] != old.get("sha256"):
                    changed.append(name)
            entries[name] = entry
        removed = tuple(sorted(set(old_entries) - set(entries)))
        return Probe({"entries": entries}, tuple(changed), removed)

    def fetch(self, probe: Probe, into: Path) -> Fetched:
        """Copy the changed files into `into`, hashing what was copied."""
        files = self.files()
        entries = entries_of(probe.state)
        for name in probe.changed:
            target = Path(into) / safe_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            entries[name] = {**entries[name], "sha256": copy_hashing(files[name], target)}
        return Fetched({"entries": entries}, probe.changed)


def copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


class LocalFileSource(LocalFiles):
    """One file on this machine."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.uri = str(path)

    def files(self) -> dict[str, Path]:
        if not self.path.is_file():
            raise InvalidInput(f"data source {self.uri!r} is not a readable file")
        return {self.path.name: self.path}


class DirectorySource(LocalFiles):
    """The data files of a directory (recursively, hidden ones skipped) or of a glob pattern."""

    def __init__(self, pattern: str | Path) -> None:
        self.uri = str(pattern)
        self.is_glob = bool(_GLOB.search(self.uri))
        self.root = glob_root(self.uri) if self.is_glob else Path(self.uri)

    def files(self) -> dict[str, Path]:
        if self.is_glob:
            found = [Path(p) for p in glob.glob(self.uri, recursive=True)]
            paths = [p for p in found if p.is_file()]
        elif self.root.is_dir():
            paths = [p for p in self.root.rglob("*") if p.is_file() and is_data_name(p.name)]
        else:
            raise InvalidInput(f"data source {self.uri!r} is not a directory")
        named = {
            p.relative_to(self.root).as_posix(): p
            for p in paths
            if not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        }
        if not named:
            raise InvalidInput(f"data source {self.uri!r} holds no data file")
        return dict(sorted(named.items()))


def glob_root(pattern: str) -> Path:
    """The longest leading directory of a glob pattern without wildcards."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _GLOB.search(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


# --- HTTP ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class DateTemplate:
    """A URL with a {date:FORMAT} placeholder and client-side options after '#' (start, gap)."""

    pattern: str
    start: date | None = None
    max_gap: int = 7

    @classmethod
    def parse(cls, uri: str) -> DateTemplate:
        pattern, _, fragment = uri.partition("#")
        options = {k: v[-1] for k, v in parse_qs(fragment).items()}
        start = date.fromisoformat(options["start"]) if "start" in options else None
        return cls(pattern, start, int(options.get("gap", 7)))

    def url(self, day: date) -> str:
        return _TEMPLATE.sub(lambda m: day.strftime(m.group(1) or "%Y-%m-%d"), self.pattern)


class HttpTemplateSource(HttpFiles):
    """One file per day at a URL template, e.g. .../cases-{date:%Y%m%d}.csv#start=2020-02-24.

    Known days are remembered; each probe revalidates the last `recheck` of them and looks for
    the days after the last one, until `gap` consecutive days are missing or tomorrow is reached.
    """

    def __init__(
        self,
        uri: str,
        *,
        recheck: int = 7,
        timeout: float = 30.0,
        session: Any = None,
        today: date | None = None,
    ) -> None:
        self.uri = uri
        self.template = DateTemplate.parse(uri)
        self.recheck = recheck
        self.today = today
        self.client = HttpClient(timeout=timeout, session=session)

    def probe(self, previous: State | None = None) -> Probe:
        before = self.client.requests
        entries = entries_of(previous)
        if entries:
            first = max(date.fromisoformat(entry["date"]) for entry in entries.values())
            first += timedelta(days=1)
        elif self.template.start is not None:
            first = self.template.start
        else:
            raise InvalidInput(
                f"the URL template {self.uri!r} needs a first day: append #start=YYYY-MM-DD"
            )
        known = sorted(entries, key=lambda name: entries[name]["date"])
        changed, gone = self.revalidate_entries(
            entries, known[-self.recheck :] if self.recheck else []
        )
        for name in gone:
            entries.pop(name)
        new = []
        day, misses = first, 0
        last_day = (self.today or date.today()) + timedelta(days=1)
        while day <= last_day and misses < self.template.max_gap:
            url = self.template.url(day)
            response = self.client.call("HEAD", url, allow_redirects=True)
            if response.status_code == 200:
                name = safe_name(PurePosixPath(urlsplit(url).path).name)
                entries[name] = {"url": url, "date": day.isoformat(), **validators(response)}
                new.append(name)
                misses = 0
            else:
                misses += 1
            day += timedelta(days=1)
        state = {"mode": "template", "entries": entries}
        changed_names = tuple(sorted(set(new) | set(changed)))
        return Probe(state, changed_names, tuple(sorted(gone)), self.client.requests - before)


# --- S3 --------------------------------------------------------------------------------------


@dataclass
class S3Source:
    """An S3 object (s3://bucket/key) or every data object under a prefix (s3://bucket/prefix/)."""

    uri: str
    client: Any = None
    bucket: str = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.uri)
        self.bucket, self.key = parts.netloc, parts.path.lstrip("/")
        if not self.bucket:
            raise InvalidInput(f"no bucket in {self.uri!r}")
        if self.client is None:
            import boto3

            self.client = boto3.client("s3")

    def objects(self) -> tuple[dict[str, dict[str, Any]], int]:
        """Entry name -> {key, etag, size}; one HEAD for a key, one listing page per 1000 keys."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self.key and not self.key.endswith("/"):
                try:
                    head = self.client.head_object(Bucket=self.bucket, Key=self.key)
                    name = safe_name(PurePosixPath(self.key).name)
                    entry = {"key": self.key, "etag": head["ETag"], "size": head["ContentLength"]}
                    return {name: entry}, 1
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchKey"}:
                        raise
            prefix = self.key if not self.key or self.key.endswith("/") else self.key + "/"
            found: dict[str, dict[str, Any]] = {}
            pages = 0
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                pages += 1
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if name and not name.endswith("/") and is_data_name(name):
                        found[safe_name(name)] = {
                            "key": item["Key"],
                            "etag": item["ETag"],
                            "size": item["Size"],
                        }
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"the data source {self.uri} cannot be listed: {exc}") from exc
        if not found:
            raise InvalidInput(f"data source {self.uri!r} holds no data object")
        return dict(sorted(found.items())), pages

    def probe(self, previous: State | None = None) -> Probe:
        """Compare S3 ETags with the previous ones; downloads nothing."""
        old = entries_of(previous)
        objects, calls = self.objects()
        entries, changed = {}, []
        for name, entry in objects.items():
            before = old.get(name, {})
            if before.get("etag") == entry["etag"] and "sha256" in before:
                entries[name] = {**entry, "sha256": before["sha256"]}
            else:
                entries[name] = entry
                changed.append(name)
        removed = tuple(sorted(set(old) - set(entries)))
        return Probe({"entries": entries}, tuple(changed), removed, calls)

    def fetch(self, probe: Probe, into: Path) -> Fetched:
        from botocore.exceptions import BotoCoreError, ClientError

        entries = entries_of(probe.state)
        for name in probe.changed:
            target = Path(into) / safe_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=entries[name]["key"])
                digest = hashlib.sha256()
                with open(target, "wb") as stream:
                    for chunk in body["Body"].iter_chunks(CHUNK):
                        digest.update(chunk)
                        stream.write(chunk)
            except (BotoCoreError, ClientError) as exc:
                raise Unavailable(f"cannot download {entries[name]['key']}: {exc}") from exc
            entries[name] = {**entries[name], "etag": body["ETag"], "sha256": digest.hexdigest()}
        return Fetched({"entries": entries}, probe.changed, len(probe.changed))


# --- whole downloads -------------------------------------------------------------------------


def fetch_all(source: Source, into: Path) -> Fetched:
    """Download every entry of a source into a directory (no previous state)."""
    into.mkdir(parents=True, exist_ok=True)
    return source.fetch(source.probe(None), into)


def local_files(source: Source) -> dict[str, Path] | None:
    """Entry name -> path for sources read in place (files, directories, globs), else None."""
    return source.files() if isinstance(source, LocalFiles) else None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
