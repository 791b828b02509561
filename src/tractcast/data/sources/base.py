"""What every source shares: its interface, its state, snapshot names and hashes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from tractcast.errors import InvalidInput

DATA_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".psv", ".dat")
ARCHIVE_SUFFIXES = (".gz", ".zip")
CHUNK = 1 << 20
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
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


def is_remote(uri: str | Path) -> bool:
    """Whether a source URI needs downloading (HTTP, S3) rather than reading in place."""
    text = str(uri)
    return bool(URL.match(text)) and not text.lower().startswith("file://")


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


def fetch_all(source: Source, into: Path) -> Fetched:
    """Download every entry of a source into a directory (no previous state)."""
    into.mkdir(parents=True, exist_ok=True)
    return source.fetch(source.probe(None), into)
