"""The registry: the model store and the metadata database, behind one object.

Callers above the registry (the pipeline, the checks, the CLI, the services and the Celery
tasks) hold a Registry and never a store path: where versions and bundles lie on disk is
known to `tractcast.registry.store` alone. Readers that must not write (the API's bundle
holder, the dashboard, live-error scoring, the S3 mirror) get `Registry.reader`, or open a
`RegistryReader` on the store directory themselves.

On a host without the store (TRACTCAST_SERVING_SOURCE=s3) the registry service opens a Registry
over a read-only StoreView (tractcast.registry.remote.serving_registry): it answers every
question, and whatever would write the store raises Conflict, naming where to run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tractcast.errors import Conflict, NotFound, Unavailable
from tractcast.registry.integrity import verify_version_files, with_checksums
from tractcast.registry.metadata import (
    CHAMPION_KINDS,
    DATA_EVENT_KINDS,
    Event,
    SqlMetadataStore,
    metadata_store_of,
)
from tractcast.registry.mirror import MirrorReport, mirror_store, restore_store
from tractcast.registry.store import (
    ABANDONED_AFTER,
    LocalModelStore,
    ModelVersion,
    RegistryReader,
    StoreView,
    version_of_bundle,
)
from tractcast.registry.tracking import TrackingReport, flush_pending, track_candidates
from tractcast.serving.bundle import Bundle
from tractcast.settings import Settings

if TYPE_CHECKING:
    from tractcast.data.watch import DataWatcher

log = logging.getLogger(__name__)


class Registry:
    """Register, promote, reject and roll back versions; describe them; keep the store clean.

    The model store's `current` link is the truth about what serves; the metadata store keeps
    the story of how it came to serve.
    """

    def __init__(
        self,
        store: StoreView,
        metadata: SqlMetadataStore,
        settings: Settings | None = None,
    ) -> None:
        self.store = store
        self.metadata = metadata
        if settings is None:
            settings = (
                Settings(store=store.root) if isinstance(store, RegistryReader) else Settings()
            )
        self.settings = settings

    @classmethod
    def open(cls, settings: Settings) -> Registry:
        """The registry the settings name (store directory and metadata database URL)."""
        store = LocalModelStore(settings.store)
        store.root.mkdir(parents=True, exist_ok=True)
        return cls(store, metadata_store_of(settings), settings)

    @property
    def reader(self) -> RegistryReader:
        """The read-only view of the store directory; Conflict on a host without it."""
        return self.local_store("read the store directory")

    def local_store(self, action: str) -> LocalModelStore:
        """The store directory, for what must write it (or read more than versions and bundles);
        Conflict, naming `action`, on a host that reads the database and the S3 mirror instead."""
        if not isinstance(self.store, LocalModelStore):
            raise Conflict(
                f"cannot {action} here: this host serves from the S3 mirror "
                "(TRACTCAST_SERVING_SOURCE=s3) and has no model store; run it where the store is"
            )
        return self.store

    # -- what is stored ------------------------------------------------------------------------

    def list_versions(self) -> list[ModelVersion]:
        return self.store.list_versions()

    def get_version(self, version: str) -> ModelVersion:
        return self.store.get_version(version)

    def latest_bundle_for(self, version: str) -> str | None:
        return self.store.latest_bundle_for(version)

    def bundle(self, bundle_id: str) -> Bundle:
        return self.store.bundle(bundle_id)

    def current_bundle_id(self) -> str | None:
        return self.store.current_bundle_id()

    def serving_version(self) -> str | None:
        return self.store.serving_version()

    def list_events(
        self, limit: int | None = 100, kinds: Iterable[str] | None = None
    ) -> list[Event]:
        return self.metadata.list_events(limit=limit, kinds=kinds)

    def previous_champion(self, champion: str | None) -> str | None:
        """The champion before `champion`, from the promotions and rollbacks on record."""
        history = self.list_events(limit=None, kinds=CHAMPION_KINDS)[::-1]
        return previous_champion(history, champion)

    def current_model(self) -> dict[str, Any]:
        """What serves now: version, family, bundle, data version, metrics and as_of; or
        NotFound."""
        bundle_id = self.store.current_bundle_id()
        if bundle_id is None:
            raise NotFound("no model is serving yet")
        version = self.store.get_version(version_of_bundle(bundle_id))
        bundle = self.store.bundle(bundle_id)
        return {
            "version": version.version,
            "family": version.family,
            "bundle_id": bundle_id,
            "data_version": bundle.data_version,
            "metrics": version.metrics,
            "as_of": bundle.as_of,
            "created_at": version.created_at,
        }

    def list_models(self) -> dict[str, Any]:
        """Every version, oldest first, and the one serving."""
        champion = self.serving_version()
        return {
            "versions": [
                {
                    "version": v.version,
                    "family": v.family,
                    "created_at": v.created_at,
                    "data_version": v.data_version,
                    "metrics": v.metrics,
                    "serving": v.version == champion,
                }
                for v in self.store.list_versions()
            ],
            "current": champion,
        }

    def describe(self, version: str) -> dict[str, Any]:
        """One version with its metrics, manifest, newest bundle and whether it serves."""
        found = self.store.get_version(version)
        return {
            "version": found.version,
            "family": found.family,
            "created_at": found.created_at,
            "data_version": found.data_version,
            "metrics": found.metrics,
            "manifest": found.manifest,
            "latest_bundle": self.store.latest_bundle_for(found.version),
            "serving": self.serving_version() == found.version,
        }

    def check_ready(self) -> dict[str, Any]:
        """Raise Unavailable unless the store can be read and the metadata database answers."""
        if not self.store.is_readable():
            raise Unavailable("the model store cannot be read")
        self.metadata.ping()
        return {"status": "ready", "current": self.store.current_bundle_id()}

    # -- what changes it -----------------------------------------------------------------------

    def register(
        self,
        family: str,
        write_artifacts: Callable[[Path], None],
        metrics: dict[str, Any],
        manifest: dict[str, Any],
        *,
        reason: str = "trained",
        trigger: str = "manual",
    ) -> ModelVersion:
        """Create an immutable version in the store and record its registration."""
        version = self.local_store("register a version").create_version(
            family,
            with_checksums(write_artifacts),
            metrics,
            manifest,
            after=self.metadata.max_version_number(),
        )
        self.metadata.record_version(version)
        self.metadata.record_event("registered", version.version, reason=reason, trigger=trigger)
        return version

    def add_bundle(self, bundle: Bundle) -> str:
        return self.local_store("add a bundle").add_bundle(bundle)

    def promote(self, version: str, *, reason: str, trigger: str = "manual") -> Event:
        """Make a version champion: point `current` at its newest bundle, record "promoted"."""
        return self._make_champion(version, "promoted", reason, trigger)

    def reject(
        self, version: str, *, champion: str | None, reason: str, trigger: str = "manual"
    ) -> Event:
        """Record that a candidate did not pass the promotion gate; the champion stays."""
        return self.metadata.record_event(
            "rejected", version, from_version=champion, reason=reason, trigger=trigger
        )

    def rollback(
        self, to_version: str | None = None, *, reason: str, trigger: str = "manual"
    ) -> Event:
        """Serve an older version again: the given one, or the champion before the current one."""
        self.local_store("roll back")
        champion = self.serving_version()
        if to_version is None:
            to_version = self.previous_champion(champion)
            if to_version is None:
                raise Conflict("there is no earlier champion to roll back to")
        elif to_version == champion:
            raise Conflict(f"{to_version} is already serving")
        return self._make_champion(to_version, "rolled_back", reason, trigger)

    def refresh_serving_bundle(self, bundle: Bundle) -> str:
        """Store a newer bundle of the version serving now and serve it; no champion changes.

        Newer data with the same model: `current` moves to the new bundle atomically and the
        version stays champion, so no lifecycle event is recorded.
        """
        store = self.local_store("serve a bundle")
        if self.serving_version() != bundle.model_version:
            raise Conflict(f"{bundle.model_version} is not serving; promote it instead")
        bundle_id = store.add_bundle(bundle)
        if store.current_bundle_id() != bundle_id:
            store.set_current(bundle_id)
            self.metadata.record_serving(bundle_id, bundle.model_version)
        return bundle_id

    def record_data_events(
        self,
        watcher: DataWatcher,
        report: dict[str, Any] | None = None,
        data_version: str | None = None,
        trigger: str = "manual",
    ) -> list[Event]:
        """Events for what the watcher set aside (held and refused releases) and for a stale
        feed in the release in use; each recorded once, whichever process notices first."""
        recorded = self.metadata.list_events(limit=None, kinds=DATA_EVENT_KINDS)
        seen = {(e.kind, e.version) for e in recorded}
        found = [("data_held", v, info) for v, info in watcher.held().items()]
        found += [("data_refused", v, info) for v, info in watcher.rejections().items()]
        stale = (report or {}).get("stale") or {}
        if stale.get("stale") and data_version:
            found.append(("feed_stale", data_version, {"reason": stale["reason"]}))
        pinned = (watcher.pinned() or {}).get("data_version")
        return [
            self.metadata.record_event(
                kind,
                version,
                from_version=pinned,
                reason=str(info.get("reason", "")),
                trigger=trigger,
            )
            for kind, version, info in found
            if (kind, version) not in seen
        ]

    def accept_data_release(
        self, watcher: DataWatcher, data_version: str, trigger: str = "manual"
    ) -> Event:
        """An admin accepts a held data release: it is pinned and the next retrain uses it."""
        self.local_store("accept a data release")  # the watcher's state lies in the store
        previous = (watcher.pinned() or {}).get("data_version")
        accepted = watcher.accept(data_version)
        return self.metadata.record_event(
            "data_accepted",
            data_version,
            from_version=previous,
            reason=f"accepted by an admin; it was held because: {accepted['reason']}",
            trigger=trigger,
        )

    def sweep_abandoned(self, older_than: float = ABANDONED_AFTER) -> list[str]:
        """Remove what a killed writer left in the store; returns the removed entries."""
        removed = self.local_store("sweep the store").sweep_abandoned(older_than)
        if removed:
            log.info("removed %d abandoned temp dirs: %s", len(removed), ", ".join(removed))
        return removed

    def _make_champion(self, version: str, kind: str, reason: str, trigger: str) -> Event:
        store = self.local_store("promote" if kind == "promoted" else "roll back")
        found = store.get_version(version)  # InvalidInput or NotFound
        bundle_id = store.latest_bundle_for(found.version)
        if bundle_id is None:
            raise Conflict(f"{found.version} has no serving bundle yet")
        previous = self.serving_version()
        try:
            verify_version_files(found)  # a corrupted .h5 never becomes champion
            store.set_current(bundle_id)
        except Unavailable as exc:
            self.metadata.record_event(
                "rejected", found.version, reason=exc.message, trigger=trigger
            )
            raise
        self.metadata.record_version(found)
        self.metadata.record_serving(bundle_id, found.version)
        return self.metadata.record_event(
            kind, found.version, from_version=previous, reason=reason, trigger=trigger
        )

    # -- copies elsewhere (MLflow, S3); their outages are logged, never raised ------------------

    def track(self, versions: Iterable[str], promoted: str | None) -> TrackingReport:
        return track_candidates(self.settings, self.local_store("track"), versions, promoted)

    def flush_tracking(self) -> TrackingReport:
        return flush_pending(self.settings, self.local_store("track"))

    def mirror(self) -> MirrorReport | None:
        return mirror_store(self.settings, self.local_store("mirror the store"))

    def restore_from_mirror(self) -> list[str]:
        """Copy into the store the versions and bundles the S3 mirror holds and it lacks, and
        serve what the metadata database says serves: a worker on a host without the shared
        store starts a retrain from the same champion as every other host. Returns what came.
        """
        store = self.local_store("restore the store")
        return restore_store(self.settings, store, self.metadata.serving_bundle_id())

    def close(self) -> None:
        self.metadata.close()


def previous_champion(history: Sequence[Event], champion: str | None) -> str | None:
    """The champion before `champion` (the serving version), reading promotions and rollbacks
    oldest first.

    A rollback pops the champions above its target, so rolling back twice walks further back
    instead of returning to the version just rolled back from.
    """
    stack: list[str] = []
    for event in history:
        if event.kind == "rolled_back" and event.version in stack:
            del stack[len(stack) - stack[::-1].index(event.version) :]
        elif not stack or stack[-1] != event.version:
            stack.append(event.version)
    if stack and stack[-1] != champion:
        # `current` was moved outside the lifecycle; the last champion on record is the way back
        return stack[-1]
    earlier = [version for version in stack[:-1] if version != champion]
    return earlier[-1] if earlier else None
