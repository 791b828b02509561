"""Model versions on disk and the `current` label: the only code that knows the store's layout.

Layout under the store root:
    versions/<version>/      immutable: model files, metrics.json, manifest.json
    bundles/<bundle_id>/     immutable: bundle.json, bundle.sha256 (+ the .npy arrays of format 2)
                             (bundle_id = "<version>@<data_version>")
    current -> bundles/<bundle_id>   relative symlink, swapped atomically (temp link + os.replace)
    .tmp-*                           what a writer has not renamed into place yet (in each folder)
    .lock                            the writers' lock (version numbers are taken under it)
    metadata.db                      the metadata database when no TRACTCAST_DATABASE_URL is set
                                     (beside it, SQLite's journal and the migration lock)
    data/                            the data watcher's snapshots and state (data_dir)
    monitoring/                      the scheduled checks' log, state and lock (checks_dir)
    tracking-pending/<version>.json  versions MLflow has not taken yet (tracking_backlog_dir)
    .retrain.lock                    one retrain per store at a time (retrain_lock_path)
    .scheduler.lock                  the scheduler's leader lock without Redis (scheduler_lock_path)

StoreView is what reading versions and bundles needs on any host: RegistryReader reads that
layout, and a host without the store reads the metadata database and the S3 mirror instead
(tractcast.registry.remote.RemoteRegistryReader).

RegistryReader reads that layout (what the API, the dashboard, live-error scoring and the S3
mirror need) and names every other path under the root, so their owners ask it instead of
spelling them; LocalModelStore also writes versions, bundles and `current`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tractcast.clock import utc_now
from tractcast.errors import InvalidInput, NotFound, Unavailable
from tractcast.jsonsafe import json_safe
from tractcast.locks import FileLock
from tractcast.serving.bundle import Bundle, load_bundle, write_bundle
from tractcast.settings import Settings
from tractcast.validation import DATA_VERSION_PATTERN, FAMILY_PATTERN, VERSION_PATTERN

_VERSION = re.compile(VERSION_PATTERN)
_FAMILY = re.compile(FAMILY_PATTERN)
_DATA_VERSION = re.compile(DATA_VERSION_PATTERN)
TMP_PREFIX = ".tmp-"
CURRENT = "current"
VERSIONS_DIR = "versions"
BUNDLES_DIR = "bundles"
WRITER_LOCK = ".lock"
METADATA_DB = "metadata.db"
DATA_DIR = "data"
CHECKS_DIR = "monitoring"
TRACKING_BACKLOG_DIR = "tracking-pending"
RETRAIN_LOCK = ".retrain.lock"
SCHEDULER_LOCK = ".scheduler.lock"
ABANDONED_AFTER = 60.0  # seconds; a store write takes far less, so an older temp entry is orphaned


@dataclass(frozen=True)
class ModelVersion:
    version: str
    family: str
    created_at: str
    data_version: str
    metrics: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def check_version(version: str) -> str:
    """The version id, or InvalidInput when it is not shaped like "v0003-lstm"."""
    if not isinstance(version, str) or not _VERSION.match(version):
        raise InvalidInput(f"malformed version id {str(version)[:80]!r}, expected e.g. v0003-lstm")
    return version


def check_bundle_id(bundle_id: str) -> str:
    """The bundle id, or InvalidInput when it is not "<version>@<data_version>"."""
    version, sep, data_version = str(bundle_id).partition("@")
    if not sep or not _VERSION.match(version) or not _DATA_VERSION.match(data_version):
        raise InvalidInput(f"malformed bundle id {str(bundle_id)[:160]!r}")
    return bundle_id


def version_of_bundle(bundle_id: str) -> str:
    """The model version a bundle id names."""
    return check_bundle_id(bundle_id).partition("@")[0]


def metadata_url(settings: Settings) -> str:
    """SQLAlchemy URL of the metadata database; SQLite inside the store by default."""
    return settings.database_url or f"sqlite:///{Path(settings.store).resolve() / METADATA_DB}"


def version_number(version: str) -> int:
    """The sequence number of a version id: 3 for "v0003-lstm"."""
    return _number(check_version(version))


class StoreView(Protocol):
    """The versions, the bundles and which one serves, read-only."""

    def list_versions(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        ...

    def get_version(self, version: str) -> ModelVersion:
        """The version, or NotFound; a malformed id raises InvalidInput."""
        ...

    def latest_bundle_for(self, version: str) -> str | None:
        """The newest bundle made by the version, or None."""
        ...

    def current_bundle_id(self) -> str | None:
        """The bundle that serves, or None before the first promotion."""
        ...

    def serving_version(self) -> str | None:
        """The version whose bundle serves (the champion), or None."""
        ...

    def bundle(self, bundle_id: str) -> Bundle:
        """The verified bundle."""
        ...

    def bundle_ids(self, version: str | None = None) -> list[str]:
        """The bundles (of one version, if given), newest first."""
        ...

    def is_readable(self) -> bool:
        """Whether versions and bundles can be read now."""
        ...


class RegistryReader:
    """A read-only view of a model store: versions, bundles and what `current` points at."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._versions = self.root / VERSIONS_DIR
        self._bundles = self.root / BUNDLES_DIR
        self._cached: Bundle | None = None
        self._cache_lock = threading.Lock()

    def list_versions(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        return [self._read_version(name) for name in self._version_names()]

    def get_version(self, version: str) -> ModelVersion:
        """The version, or NotFound; a malformed id raises InvalidInput."""
        check_version(version)
        if not (self._versions / version / "manifest.json").is_file():
            raise NotFound(f"no model version {version}")
        return self._read_version(version)

    def latest_bundle_for(self, version: str) -> str | None:
        """The newest bundle made by the version, or None."""
        found = self.bundle_ids(version)
        return found[0] if found else None

    def current_bundle_id(self) -> str | None:
        """The bundle `current` points at, or None before the first promotion."""
        try:
            target = os.readlink(self.root / CURRENT)
        except FileNotFoundError:
            return None
        return Path(target).name

    def serving_version(self) -> str | None:
        """The version whose bundle `current` points at (the champion), or None."""
        bundle_id = self.current_bundle_id()
        return version_of_bundle(bundle_id) if bundle_id else None

    def bundle(self, bundle_id: str) -> Bundle:
        """The verified bundle; the last one read stays cached (bundles are immutable)."""
        check_bundle_id(bundle_id)
        with self._cache_lock:
            cached = self._cached
        if cached is not None and cached.bundle_id == bundle_id:
            return cached
        return self._load(bundle_id)

    def is_readable(self) -> bool:
        """Whether the store root exists and can be listed."""
        return self.root.is_dir() and os.access(self.root, os.R_OK | os.X_OK)

    def bundle_ids(self, version: str | None = None) -> list[str]:
        """The stored bundles (of one version, if given), newest first; temp dirs left out."""
        prefix = f"{check_version(version)}@" if version is not None else ""
        found = []
        try:
            entries = list(os.scandir(self._bundles))
        except OSError:
            return []  # no bundles directory (yet), or one being replaced
        for entry in entries:
            if not entry.name.startswith(prefix) or entry.name.startswith(TMP_PREFIX):
                continue
            try:
                if entry.is_dir():
                    found.append((entry.stat().st_mtime_ns, check_bundle_id(entry.name)))
            except (OSError, InvalidInput):
                continue  # removed meanwhile, or not a bundle
        return [name for _, name in sorted(found, reverse=True)]

    def bundle_path(self, bundle_id: str) -> Path:
        """Where a bundle's files lie (for loaders and the mirror); the id is checked."""
        return self._bundles / check_bundle_id(bundle_id)

    # -- the other files under the root: their owners ask here, never spell the path -----------

    def data_dir(self) -> Path:
        """The data watcher's folder: raw snapshots by data version, and its state."""
        return self.root / DATA_DIR

    def checks_dir(self) -> Path:
        """The scheduled checks' folder: their log, last state and lock."""
        return self.root / CHECKS_DIR

    def tracking_backlog_dir(self) -> Path:
        """Versions the tracking server has not taken yet, one JSON file each."""
        return self.root / TRACKING_BACKLOG_DIR

    def retrain_lock_path(self) -> Path:
        """The lock a retrain holds, so only one runs per store."""
        return self.root / RETRAIN_LOCK

    def scheduler_lock_path(self) -> Path:
        """The scheduler's leader lock when there is no Redis to hold it."""
        return self.root / SCHEDULER_LOCK

    def _load(self, bundle_id: str) -> Bundle:
        check_bundle_id(bundle_id)
        path = self._bundles / bundle_id
        if not path.is_dir():
            raise NotFound(f"no bundle {bundle_id}")
        loaded = load_bundle(path)
        if loaded.bundle_id != bundle_id:
            raise Unavailable(f"bundle {bundle_id} is corrupt: it holds {loaded.bundle_id}")
        with self._cache_lock:
            self._cached = loaded
        return loaded

    def _version_names(self) -> list[str]:
        if not self._versions.is_dir():
            return []
        names = [entry.name for entry in os.scandir(self._versions) if _VERSION.match(entry.name)]
        return sorted(names, key=_number)

    def _read_version(self, version: str) -> ModelVersion:
        path = self._versions / version
        manifest = json.loads((path / "manifest.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
        return ModelVersion(
            version=version,
            family=manifest["family"],
            created_at=manifest["created_at"],
            data_version=manifest.get("data_version", ""),
            metrics=metrics,
            manifest=manifest,
            path=path,
        )


class LocalModelStore(RegistryReader):
    """Versions and bundles in a local directory."""

    def create_version(
        self,
        family: str,
        write_artifacts: Callable[[Path], None],
        metrics: dict[str, Any],
        manifest: dict[str, Any],
        *,
        after: int = 0,
    ) -> ModelVersion:
        """Write a new version in a temp dir, then rename it into place; returns it.

        Its number follows the store's newest and `after` (the newest another host recorded)."""
        if not isinstance(family, str) or not _FAMILY.match(family):
            raise InvalidInput(f"malformed model family {str(family)[:80]!r}")
        self._versions.mkdir(parents=True, exist_ok=True)
        tmp = self._versions / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        tmp.mkdir()
        try:
            write_artifacts(tmp)
            # the number is taken and the directory renamed under one lock, so two writers
            # never get the same id
            with self._lock():
                version = f"v{max(self._next_number(), after + 1):04d}-{family}"
                full_manifest = {
                    **manifest,
                    "version": version,
                    "family": family,
                    "created_at": utc_now(),
                    "data_version": str(manifest.get("data_version", "")),
                }
                _write_json(tmp / "metrics.json", metrics)
                _write_json(tmp / "manifest.json", full_manifest)
                _seal(tmp)
                os.rename(tmp, self._versions / version)
                _fsync_dir(self._versions)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get_version(version)

    def add_bundle(self, bundle: Bundle) -> str:
        """Store a serving bundle (write then rename); returns its bundle_id."""
        bundle_id = check_bundle_id(bundle.bundle_id)
        self.get_version(bundle.model_version)
        final = self._bundles / bundle_id
        if final.exists():
            return bundle_id
        self._bundles.mkdir(parents=True, exist_ok=True)
        tmp = self._bundles / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            write_bundle(bundle, tmp)
            _seal(tmp)
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not final.exists():  # not a concurrent writer of the same bundle
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self._bundles)
        return bundle_id

    def set_current(self, bundle_id: str) -> None:
        """Point `current` at a bundle that loads and passes its checks; atomic."""
        self._load(bundle_id)  # raises Unavailable for a broken bundle, before anything moves
        tmp = self.root / f"{TMP_PREFIX}current-{secrets.token_hex(8)}"
        os.symlink(os.path.join(BUNDLES_DIR, bundle_id), tmp)
        try:
            os.replace(tmp, self.root / CURRENT)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def import_version(self, version: str, fill: Callable[[Path], object]) -> bool:
        """Add a version copied from elsewhere (fill writes its files into a temp dir) under its
        own id; False when the store has it already."""
        return self._import(self._versions, check_version(version), fill)

    def import_bundle(self, bundle_id: str, fill: Callable[[Path], object]) -> bool:
        """Add a bundle copied from elsewhere, the same way; it is checked before it is kept."""

        def checked(tmp: Path) -> None:
            fill(tmp)
            if load_bundle(tmp).bundle_id != bundle_id:
                raise Unavailable(f"bundle {bundle_id} arrived holding another bundle")

        return self._import(self._bundles, check_bundle_id(bundle_id), checked)

    def _import(self, folder: Path, name: str, fill: Callable[[Path], object]) -> bool:
        if (folder / name).exists():
            return False
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            fill(tmp)
            _seal(tmp)
            with self._lock():
                if (folder / name).exists():
                    shutil.rmtree(tmp, ignore_errors=True)
                    return False
                os.rename(tmp, folder / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(folder)
        return True

    def sweep_abandoned(self, older_than: float = ABANDONED_AFTER) -> list[str]:
        """Remove what a killed writer left behind (never visible): temp dirs in versions/ and
        bundles/, temp links beside `current`; returns their paths relative to the root."""
        removed = []
        now = time.time()
        for folder in (self.root, self._versions, self._bundles):
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if not entry.name.startswith(TMP_PREFIX):
                    continue
                if now - entry.stat(follow_symlinks=False).st_mtime <= older_than:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink(missing_ok=True)
                removed.append(os.path.relpath(entry.path, self.root))
        return removed

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root / WRITER_LOCK):
            yield

    def _next_number(self) -> int:
        names = self._version_names()
        return _number(names[-1]) + 1 if names else 1


def _number(version: str) -> int:
    return int(version[1 : version.index("-")])


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w") as handle:
        json.dump(json_safe(value), handle, indent=2, sort_keys=True, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())


def _seal(directory: Path) -> None:
    """fsync every file written into a temp dir and make it read-only before the rename."""
    for dirpath, _dirnames, filenames in os.walk(directory):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(path, 0o444)
        _fsync_dir(Path(dirpath))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
