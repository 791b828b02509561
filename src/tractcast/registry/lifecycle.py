"""Register, promote and roll back model versions over the model store and the metadata store.

The model store's `current` link is the truth about what serves; the metadata store keeps the
story of how it came to serve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tractcast.errors import Conflict, NotFound, Unavailable
from tractcast.registry.integrity import verify_version_files, with_checksums
from tractcast.registry.metadata import (
    CHAMPION_KINDS,
    DATA_EVENT_KINDS,
    Event,
    SqlMetadataStore,
    metadata_store_from_url,
)
from tractcast.registry.store import (
    LocalModelStore,
    ModelVersion,
    metadata_url,
    version_of_bundle,
)
from tractcast.serving.bundle import Bundle
from tractcast.settings import Settings

if TYPE_CHECKING:
    from tractcast.data.watch import DataWatcher


def open_stores(settings: Settings) -> tuple[LocalModelStore, SqlMetadataStore]:
    """The model store and the metadata store the settings name."""
    store = LocalModelStore(settings.store)
    store.root.mkdir(parents=True, exist_ok=True)
    return store, metadata_store_from_url(metadata_url(settings))


def register_version(
    store: LocalModelStore,
    metadata: SqlMetadataStore,
    family: str,
    write_artifacts: Callable[[Path], None],
    metrics: dict[str, Any],
    manifest: dict[str, Any],
    *,
    reason: str = "trained",
    trigger: str = "manual",
) -> ModelVersion:
    """Create an immutable version in the store and record its registration."""
    version = store.create_version(family, with_checksums(write_artifacts), metrics, manifest)
    metadata.record_version(version)
    metadata.record_event("registered", version.version, reason=reason, trigger=trigger)
    return version


def serving_version(store: LocalModelStore) -> str | None:
    """The version whose bundle `current` points at, or None."""
    bundle_id = store.current_bundle_id()
    return version_of_bundle(bundle_id) if bundle_id else None


def promote_version(
    store: LocalModelStore,
    metadata: SqlMetadataStore,
    version: str,
    *,
    reason: str,
    trigger: str = "manual",
) -> Event:
    """Make a version champion: point `current` at its newest bundle and record "promoted"."""
    return _make_champion(store, metadata, version, "promoted", reason, trigger)


def reject_version(
    metadata: SqlMetadataStore,
    version: str,
    *,
    champion: str | None,
    reason: str,
    trigger: str = "manual",
) -> Event:
    """Record that a candidate did not pass the promotion gate; the champion stays."""
    return metadata.record_event(
        "rejected", version, from_version=champion, reason=reason, trigger=trigger
    )


def refresh_serving_bundle(store: LocalModelStore, bundle: Bundle) -> str:
    """Store a newer bundle of the version serving now and serve it; no champion changes.

    Newer data with the same model: `current` moves to the new bundle atomically and the
    version stays champion, so no lifecycle event is recorded.
    """
    if serving_version(store) != bundle.model_version:
        raise Conflict(f"{bundle.model_version} is not serving; promote it instead")
    bundle_id = store.add_bundle(bundle)
    if store.current_bundle_id() != bundle_id:
        store.set_current(bundle_id)
    return bundle_id


def rollback_version(
    store: LocalModelStore,
    metadata: SqlMetadataStore,
    to_version: str | None = None,
    *,
    reason: str,
    trigger: str = "manual",
) -> Event:
    """Serve an older version again: the given one, or the champion before the current one."""
    current = serving_version(store)
    if to_version is None:
        history = metadata.list_events(limit=None, kinds=CHAMPION_KINDS)[::-1]
        to_version = previous_champion(history, current)
        if to_version is None:
            raise Conflict("there is no earlier champion to roll back to")
    elif to_version == current:
        raise Conflict(f"{to_version} is already serving")
    return _make_champion(store, metadata, to_version, "rolled_back", reason, trigger)


def previous_champion(history: Sequence[Event], current: str | None) -> str | None:
    """The champion before `current`, reading promotions and rollbacks oldest first.

    A rollback pops the champions above its target, so rolling back twice walks further back
    instead of returning to the version just rolled back from.
    """
    stack: list[str] = []
    for event in history:
        if event.kind == "rolled_back" and event.version in stack:
            del stack[len(stack) - stack[::-1].index(event.version) :]
        elif not stack or stack[-1] != event.version:
            stack.append(event.version)
    if stack and stack[-1] != current:
        # `current` was moved outside the lifecycle; the last champion on record is the way back
        return stack[-1]
    earlier = [version for version in stack[:-1] if version != current]
    return earlier[-1] if earlier else None


def current_model(store: LocalModelStore, metadata: SqlMetadataStore) -> dict[str, Any]:
    """What serves now: version, family, bundle, data version, metrics and as_of; or NotFound."""
    bundle_id = store.current_bundle_id()
    if bundle_id is None:
        raise NotFound("no model is serving yet")
    version = store.get_version(version_of_bundle(bundle_id))
    bundle = store.bundle(bundle_id)
    return {
        "version": version.version,
        "family": version.family,
        "bundle_id": bundle_id,
        "data_version": bundle.data_version,
        "metrics": version.metrics,
        "as_of": bundle.as_of,
        "created_at": version.created_at,
    }


def list_models(store: LocalModelStore) -> dict[str, Any]:
    """Every version, oldest first, and the one serving."""
    current = serving_version(store)
    return {
        "versions": [
            {
                "version": v.version,
                "family": v.family,
                "created_at": v.created_at,
                "data_version": v.data_version,
                "metrics": v.metrics,
                "serving": v.version == current,
            }
            for v in store.list_versions()
        ],
        "current": current,
    }


def describe_version(store: LocalModelStore, version: str) -> dict[str, Any]:
    """One version with its metrics, manifest, newest bundle and whether it serves."""
    found = store.get_version(version)
    return {
        "version": found.version,
        "family": found.family,
        "created_at": found.created_at,
        "data_version": found.data_version,
        "metrics": found.metrics,
        "manifest": found.manifest,
        "latest_bundle": store.latest_bundle_for(found.version),
        "serving": serving_version(store) == found.version,
    }


def check_ready(store: LocalModelStore, metadata: SqlMetadataStore) -> dict[str, Any]:
    """Raise Unavailable unless the store can be read and the metadata database answers."""
    if not store.is_readable():
        raise Unavailable("the model store cannot be read")
    metadata.ping()
    return {"status": "ready", "current": store.current_bundle_id()}


def _make_champion(
    store: LocalModelStore,
    metadata: SqlMetadataStore,
    version: str,
    kind: str,
    reason: str,
    trigger: str,
) -> Event:
    found = store.get_version(version)  # InvalidInput or NotFound
    bundle_id = store.latest_bundle_for(found.version)
    if bundle_id is None:
        raise Conflict(f"{found.version} has no serving bundle yet")
    previous = serving_version(store)
    try:
        verify_version_files(found)  # a corrupted .h5 never becomes champion
        store.set_current(bundle_id)
    except Unavailable as exc:
        metadata.record_event("rejected", found.version, reason=exc.message, trigger=trigger)
        raise
    metadata.record_version(found)
    return metadata.record_event(
        kind, found.version, from_version=previous, reason=reason, trigger=trigger
    )


def record_data_events(
    metadata: SqlMetadataStore,
    watcher: DataWatcher,
    report: dict[str, Any] | None = None,
    data_version: str | None = None,
    trigger: str = "manual",
) -> list[Event]:
    """Events for what the watcher set aside (held and refused releases) and for a stale feed
    in the release in use; each recorded once, whichever process notices first."""
    seen = {(e.kind, e.version) for e in metadata.list_events(limit=None, kinds=DATA_EVENT_KINDS)}
    found = [("data_held", v, info) for v, info in watcher.held().items()]
    found += [("data_refused", v, info) for v, info in watcher.rejections().items()]
    stale = (report or {}).get("stale") or {}
    if stale.get("stale") and data_version:
        found.append(("feed_stale", data_version, {"reason": stale["reason"]}))
    pinned = (watcher.pinned() or {}).get("data_version")
    return [
        metadata.record_event(
            kind, version, from_version=pinned, reason=str(info.get("reason", "")), trigger=trigger
        )
        for kind, version, info in found
        if (kind, version) not in seen
    ]


def accept_data_release(
    metadata: SqlMetadataStore, watcher: DataWatcher, data_version: str, trigger: str = "manual"
) -> Event:
    """An admin accepts a held data release: it is pinned and the next retrain uses it."""
    previous = (watcher.pinned() or {}).get("data_version")
    accepted = watcher.accept(data_version)
    return metadata.record_event(
        "data_accepted",
        data_version,
        from_version=previous,
        reason=f"accepted by an admin; it was held because: {accepted['reason']}",
        trigger=trigger,
    )
