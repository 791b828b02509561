"""Sources read in place: one file, a directory, or a glob."""

from __future__ import annotations

import glob
import hashlib
import re
from pathlib import Path
from typing import Any

from tractcast.data.sources.base import (
    CHUNK,
    Fetched,
    Probe,
    Source,
    State,
    entries_of,
    is_data_name,
    safe_name,
    sha256_file,
)
from tractcast.errors import InvalidInput

GLOB = re.compile(r"[*?\[]")


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
        self.is_glob = bool(GLOB.search(self.uri))
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
        if GLOB.search(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def local_files(source: Source) -> dict[str, Path] | None:
    """Entry name -> path for sources read in place (files, directories, globs), else None."""
    return source.files() if isinstance(source, LocalFiles) else None
