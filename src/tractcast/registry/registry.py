"""The registry: the model store and the metadata database, behind one object.

Callers above the registry (the pipeline, the checks, the CLI, the services and the Celery
tasks) hold a Registry and never a store path: where versions and bundles lie on disk is
known to `tractcast.registry.store` alone. Readers that must not write (the API's bundle
holder, the dashboard, live-error scoring, the S3 mirror) get `Registry.reader`, or open a
`RegistryReader` on the store directory themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tractcast.registry import lifecycle
from tractcast.registry.metadata import CHAMPION_KINDS, Event, SqlMetadataStore
from tractcast.registry.mirror import MirrorReport, mirror_store
from tractcast.registry.store import (
    ABANDONED_AFTER,
    LocalModelStore,
    ModelVersion,
    RegistryReader,
)
from tractcast.registry.tracking import TrackingReport, flush_pending, track_candidates
from tractcast.serving.bundle import Bundle
from tractcast.settings import Settings

if TYPE_CHECKING:
    from tractcast.data.watch import DataWatcher

log = logging.getLogger(__name__)


class Registry:
    """Register, promote, reject and roll back versions; describe them; keep the store clean."""

    def __init__(
        self,
        store: LocalModelStore,
        metadata: SqlMetadataStore,
        settings: Settings | None = None,
    ) -> None:
        self.store = store
        self.metadata = metadata
        self.settings = settings if settings is not None else Settings(store=store.root)

    @classmethod
    def open(cls, settings: Settings) -> Registry:
        """The registry the settings name (store directory and metadata database URL)."""
        store, metadata = lifecycle.open_stores(settings)
        return cls(store, metadata, settings)

    @property
    def reader(self) -> RegistryReader:
        """The read-only view of the store."""
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
        return lifecycle.serving_version(self.store)

    def list_events(
        self, limit: int | None = 100, kinds: Iterable[str] | None = None
    ) -> list[Event]:
        return self.metadata.list_events(limit=limit, kinds=kinds)

    def previous_champion(self, current: str | None) -> str | None:
        """The champion before `current`, from the promotions and rollbacks on record."""
        history = self.list_events(limit=None, kinds=CHAMPION_KINDS)[::-1]
        return lifecycle.previous_champion(history, current)

    def current_model(self) -> dict[str, Any]:
        return lifecycle.current_model(self.store, self.metadata)

    def list_models(self) -> dict[str, Any]:
        return lifecycle.list_models(self.store)

    def describe(self, version: str) -> dict[str, Any]:
        return lifecycle.describe_version(self.store, version)

    def check_ready(self) -> dict[str, Any]:
        return lifecycle.check_ready(self.store, self.metadata)

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
        return lifecycle.register_version(
            self.store, self.metadata, family, write_artifacts, metrics, manifest,
            reason=reason, trigger=trigger,
        )  # fmt: skip

    def add_bundle(self, bundle: Bundle) -> str:
        return self.store.add_bundle(bundle)

    def promote(self, version: str, *, reason: str, trigger: str = "manual") -> Event:
        return lifecycle.promote_version(
            self.store, self.metadata, version, reason=reason, trigger=trigger
        )

    def reject(
        self, version: str, *, champion: str | None, reason: str, trigger: str = "manual"
    ) -> Event:
        return lifecycle.reject_version(
            self.metadata, version, champion=champion, reason=reason, trigger=trigger
        )

    def rollback(
        self, to_version: str | None = None, *, reason: str, trigger: str = "manual"
    ) -> Event:
        return lifecycle.rollback_version(
            self.store, self.metadata, to_version, reason=reason, trigger=trigger
        )

    def refresh_serving_bundle(self, bundle: Bundle) -> str:
        return lifecycle.refresh_serving_bundle(self.store, bundle)

    def record_data_events(
        self,
        watcher: DataWatcher,
        report: dict[str, Any] | None = None,
        data_version: str | None = None,
        trigger: str = "manual",
    ) -> list[Event]:
        return lifecycle.record_data_events(self.metadata, watcher, report, data_version, trigger)

    def accept_data_release(
        self, watcher: DataWatcher, data_version: str, trigger: str = "manual"
    ) -> Event:
        return lifecycle.accept_data_release(self.metadata, watcher, data_version, trigger)

    def sweep_abandoned(self, older_than: float = ABANDONED_AFTER) -> list[str]:
        """Remove what a killed writer left in the store; returns the removed entries."""
        removed = self.store.sweep_abandoned(older_than)
        if removed:
            log.info("removed %d abandoned temp dirs: %s", len(removed), ", ".join(removed))
        return removed

    # -- copies elsewhere (MLflow, S3); their outages are logged, never raised ------------------

    def track(self, versions: Iterable[str], promoted: str | None) -> TrackingReport:
        return track_candidates(self.settings, self.store, versions, promoted)

    def flush_tracking(self) -> TrackingReport:
        return flush_pending(self.settings, self.store)

    def mirror(self) -> MirrorReport | None:
        return mirror_store(self.settings, self.store)

    def close(self) -> None:
        self.metadata.close()
