"""Serving without the store directory: what serves comes from the metadata database, the
bundles from the S3 mirror into a local cache.

An API replica on a host that does not share the store reads bundles through a
RemoteBundleSource instead of a RegistryReader (TRACTCAST_SERVING_SOURCE=s3). A bundle is
downloaded into a temp dir of the cache, each file checked against the sha256 the mirror's
manifest lists, and renamed into place; only then does the holder load it, so the holder's
switch stays atomic. When S3 (or the database) cannot be reached, the bundle cached last keeps
serving, and `status()` says so. The geo service gets its layer copy the same way (RemoteLayer),
and the registry service answers from a RemoteRegistryReader: versions with their metrics and
manifests from the database, bundles through the same RemoteBundleSource.

Cache layout:
    bundles/<bundle_id>/     as in the mirror, verified
    layers/<key>/            a tract layer's file(s), verified
    current                  the bundle id served last (what a restart without S3 serves)
    layer                    JSON naming the layer copy used last
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tractcast.errors import InvalidInput, TractcastError, Unavailable
from tractcast.registry.mirror import S3ArtifactMirror, layer_prefix, s3_client
from tractcast.registry.store import (
    ModelVersion,
    RegistryReader,
    check_bundle_id,
    check_version,
    version_of_bundle,
)
from tractcast.serving.bundle import Bundle, load_bundle
from tractcast.serving.holder import BundleSource
from tractcast.settings import Settings

if TYPE_CHECKING:
    from tractcast.registry.metadata import SqlMetadataStore
    from tractcast.registry.registry import Registry

log = logging.getLogger(__name__)

SERVING_SOURCES = ("local", "s3")
PROBE_INTERVAL = 10.0  # seconds between looks at whether S3 answers, while nothing is fetched
CACHED_BUNDLES = 4  # bundles kept in the cache; older ones are removed after a fetch


class ArtifactStoreState:
    """Whether S3 answered the last time it was asked, for /readyz and /metrics."""

    def __init__(self) -> None:
        self.up: bool | None = None  # None: not asked yet

    def status(self) -> dict[str, str]:
        store = {None: "unknown", True: "ok", False: "unreachable"}[self.up]
        return {"artifact_store": store, "serving_from": "cache" if self.up is False else "s3"}


class RemoteBundleSource:
    """A BundleSource over the metadata database (what serves) and the S3 mirror (the files)."""

    def __init__(
        self,
        mirror: S3ArtifactMirror,
        serving: Callable[[], str | None] | None,
        cache: Path,
        *,
        probe_interval: float = PROBE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mirror = mirror
        self._serving = serving  # the metadata database's answer; None: ask only the mirror
        self.cache = Path(cache)
        self.state = ArtifactStoreState()
        self._probe_interval = probe_interval
        self._clock = clock
        self._next_probe = float("-inf")
        self._listed: tuple[float, list[str]] = (float("-inf"), [])
        self._lock = threading.Lock()  # one download at a time per process
        self._database_down = False

    def current_bundle_id(self) -> str | None:
        """The bundle the database (or the mirror's `current`) names once it is in the cache;
        while it cannot be fetched, the bundle served last from the cache."""
        wanted = self._wanted()
        if wanted is not None and self._fetched(wanted):
            self._remember(wanted)
            return wanted
        return self._last_served()

    def bundle_ids(self, version: str | None = None) -> list[str]:
        """Bundles in the mirror (listed at most every probe interval) and in the cache, newest
        first; with S3 away, those of the cache."""
        now = self._clock()
        listed_at, listed = self._listed
        if now - listed_at >= self._probe_interval:
            try:
                listed = self.mirror.bundle_ids()
                self.state.up = True
            except Exception as exc:  # botocore's errors, or a connection refused
                self._s3_down(exc)
            self._listed = (now, listed)  # an S3 away is asked again a probe interval later
        cached = [bundle_id for bundle_id in self._cached_ids() if bundle_id not in listed]
        found = listed + cached
        if version is not None:
            found = [bundle_id for bundle_id in found if version_of_bundle(bundle_id) == version]
        return found

    def bundle_path(self, bundle_id: str) -> Path:
        """The cached bundle's folder, fetched first if needed; Unavailable when it cannot be."""
        if not self._fetched(check_bundle_id(bundle_id)):
            raise Unavailable(f"bundle {bundle_id} is not cached and S3 cannot be reached")
        return self._bundle_dir(bundle_id)

    # -- the cache -----------------------------------------------------------------------------

    def _wanted(self) -> str | None:
        if self._serving is not None:
            try:
                found = self._serving()
            except (TractcastError, OSError) as exc:
                if not self._database_down:  # once per outage, not at every check
                    log.warning("the metadata database does not say what serves: %s", exc)
                self._database_down = True
            else:
                self._database_down = False
                if found is not None:
                    self._probe()
                    return found
        try:
            found = self.mirror.current_bundle_id()
        except Exception as exc:
            self._s3_down(exc)
            return None
        self.state.up = True
        return found

    def _fetched(self, bundle_id: str) -> bool:
        """Whether the bundle is in the cache, after fetching it if it was not."""
        target = self._bundle_dir(bundle_id)
        if target.is_dir():
            return True
        with self._lock:
            try:
                fetch_into(target, lambda tmp: self.mirror.download_bundle(bundle_id, tmp))
            except Exception as exc:  # S3 away, the bundle not mirrored yet, a checksum differs
                if isinstance(exc, Unavailable):
                    log.warning("bundle %s not fetched: %s", bundle_id, exc.message)
                else:
                    self._s3_down(exc)
                return False
        self.state.up = True
        log.info("bundle %s fetched from S3 into %s", bundle_id, self.cache)
        self._evict(keep=bundle_id)
        return True

    def _probe(self) -> None:
        """Ask S3 whether it answers, at most every probe interval."""
        now = self._clock()
        if now < self._next_probe:
            return
        self._next_probe = now + self._probe_interval
        try:
            self.mirror.ping()
        except Exception as exc:
            self._s3_down(exc)
        else:
            self.state.up = True

    def _s3_down(self, exc: BaseException) -> None:
        if self.state.up is not False:
            log.warning("S3 mirror %s unreachable: %s", self.mirror.bucket, exc)
        self.state.up = False
        self._next_probe = self._clock() + self._probe_interval

    def _remember(self, bundle_id: str) -> None:
        if self._last_served() != bundle_id:
            _write_atomically(self.cache / "current", bundle_id.encode())

    def _last_served(self) -> str | None:
        try:
            bundle_id = (self.cache / "current").read_text().strip()
        except OSError:
            return None
        return bundle_id if bundle_id and self._bundle_dir(bundle_id).is_dir() else None

    def _cached_ids(self) -> list[str]:
        folder = self.cache / "bundles"
        try:
            entries = [entry for entry in os.scandir(folder) if not entry.name.startswith(".")]
        except OSError:
            return []
        found = sorted(((entry.stat().st_mtime_ns, entry.name) for entry in entries), reverse=True)
        return [name for _, name in found]

    def _evict(self, keep: str) -> None:
        for bundle_id in self._cached_ids()[CACHED_BUNDLES:]:
            if bundle_id not in (keep, self._last_served()):
                shutil.rmtree(self._bundle_dir(bundle_id), ignore_errors=True)

    def _bundle_dir(self, bundle_id: str) -> Path:
        return self.cache / "bundles" / bundle_id


class RemoteRegistryReader:
    """A StoreView on a host without the store: versions, with their metrics and manifests, from
    the metadata database; bundles, and which one serves, through a RemoteBundleSource (what the
    API replicas of the host serve)."""

    def __init__(self, metadata: SqlMetadataStore, bundles: RemoteBundleSource) -> None:
        self.metadata = metadata
        self.bundles = bundles
        self._cached: Bundle | None = None  # the last bundle read (bundles are immutable)

    def list_versions(self) -> list[ModelVersion]:
        return self.metadata.list_versions()

    def get_version(self, version: str) -> ModelVersion:
        return self.metadata.get_version(check_version(version))

    def latest_bundle_for(self, version: str) -> str | None:
        found = self.bundle_ids(version)
        return found[0] if found else None

    def current_bundle_id(self) -> str | None:
        return self.bundles.current_bundle_id()

    def serving_version(self) -> str | None:
        bundle_id = self.current_bundle_id()
        return version_of_bundle(bundle_id) if bundle_id else None

    def bundle(self, bundle_id: str) -> Bundle:
        cached = self._cached
        if cached is not None and cached.bundle_id == bundle_id:
            return cached
        loaded = load_bundle(self.bundles.bundle_path(bundle_id))
        if loaded.bundle_id != bundle_id:
            raise Unavailable(f"bundle {bundle_id} is corrupt: it holds {loaded.bundle_id}")
        self._cached = loaded
        return loaded

    def bundle_ids(self, version: str | None = None) -> list[str]:
        return self.bundles.bundle_ids(None if version is None else check_version(version))

    def is_readable(self) -> bool:
        """Whether S3 answers, or the cache holds bundles to answer from."""
        cached = self.bundles.bundle_ids()
        return self.bundles.state.up is not False or bool(cached)


class RemoteLayer:
    """The tract layer the mirror's `layer` names, copied into the cache; the copy used last
    when S3 cannot be reached. Asked again, it names the newer copy once `layer` moves."""

    def __init__(self, mirror: S3ArtifactMirror, cache: Path) -> None:
        self.mirror = mirror
        self.cache = Path(cache)
        self.state = ArtifactStoreState()

    def path(self) -> Path:
        """The layer file to load; Unavailable when none was ever fetched and S3 is away."""
        try:
            pointer = self.mirror.layer_pointer()
            if pointer is None:
                raise Unavailable("the S3 mirror holds no tract layer yet")
            target = self.cache / "layers" / pointer["key"]
            fetch_into(target, lambda tmp: self.mirror.download_layer(pointer["key"], tmp))
            self.state.up = True
            if self._last_used() != target / pointer["file"]:
                _write_atomically(self.cache / "layer", json.dumps(pointer).encode())
            return target / pointer["file"]
        except Exception as exc:
            was_up, self.state.up = self.state.up, False
            last = self._last_used()
            if last is None:
                raise Unavailable(f"no tract layer cached and S3 gave none: {exc}") from exc
            if was_up is not False:  # once per outage, not at every look
                log.warning("S3 mirror unreachable (%s): the cached layer copy serves", exc)
            return last

    def _last_used(self) -> Path | None:
        try:
            pointer = json.loads((self.cache / "layer").read_text())
        except (OSError, ValueError):
            return None
        path = self.cache / "layers" / str(pointer["key"]) / str(pointer["file"])
        return path if path.is_file() else None


def replica_mirror(settings: Settings) -> S3ArtifactMirror:
    """The mirror a replica reads (its layer's keys, as mirror_from_settings writes them), with
    short timeouts: a replica answers from its cache rather than wait on an S3 that does not
    answer."""
    if not settings.s3_bucket:
        raise TractcastError("TRACTCAST_SERVING_SOURCE=s3 needs TRACTCAST_S3_BUCKET")
    client = s3_client(settings.s3_endpoint_url, attempts=1, connect_timeout=2)
    return S3ArtifactMirror(settings.s3_bucket, prefix=layer_prefix(settings), client=client)


def remote_bundle_source(
    settings: Settings, metadata: SqlMetadataStore | None = None
) -> RemoteBundleSource:
    """The bundle source of a replica without the store (TRACTCAST_SERVING_SOURCE=s3)."""
    if metadata is None:
        metadata = _metadata(settings)
    cache = Path(settings.serving_cache)
    return RemoteBundleSource(replica_mirror(settings), metadata.serving_bundle_id, cache)


REGISTRY_CACHE = "registry"  # the registry service's folder in TRACTCAST_SERVING_CACHE


def serving_registry(settings: Settings) -> Registry:
    """The registry a serving host opens: over the store directory (local, the default), or
    read-only over the metadata database and the S3 mirror (s3), where promote, rollback and
    every other write raise Conflict."""
    from tractcast.registry.registry import Registry

    if _serving_source(settings) == "local":
        return Registry.open(settings)
    metadata = _metadata(settings)
    # a cache of its own: the live skill reads many bundles, and evicting them from the cache
    # an API replica on the same host serves from could take the bundle it is about to load
    own = settings.with_(serving_cache=Path(settings.serving_cache) / REGISTRY_CACHE)
    reader = RemoteRegistryReader(metadata, remote_bundle_source(own, metadata))
    return Registry(reader, metadata, settings)


def _metadata(settings: Settings) -> SqlMetadataStore:
    from tractcast.registry.metadata import metadata_store_of

    return metadata_store_of(settings)


def remote_layer(settings: Settings) -> RemoteLayer:
    """The layer copy of a geo replica without the store."""
    return RemoteLayer(replica_mirror(settings), Path(settings.serving_cache))


def fetch_into(target: Path, fill: Callable[[Path], object]) -> Path:
    """Run fill(tmp) on a temp dir beside `target`, then rename it to `target`: a fill that
    raises leaves nothing behind, and a target already there (another process) is kept."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{secrets.token_hex(8)}"
    try:
        fill(tmp)
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{secrets.token_hex(4)}")
    tmp.write_bytes(body)
    os.replace(tmp, path)


def bundle_source(settings: Settings) -> BundleSource:
    """Where an API process reads bundles: the store directory (local, the default) or the
    metadata database and the S3 mirror (s3)."""
    if _serving_source(settings) == "s3":
        return remote_bundle_source(settings)
    return RegistryReader(settings.store)


def _serving_source(settings: Settings) -> str:
    if settings.serving_source not in SERVING_SOURCES:
        raise InvalidInput(
            f"TRACTCAST_SERVING_SOURCE={settings.serving_source!r}: expected one of "
            f"{', '.join(SERVING_SOURCES)}"
        )
    return settings.serving_source
