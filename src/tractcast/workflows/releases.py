"""The data release in use: the configured source's watcher in the store, its newest release,
ingested and guarded, or the last good one when the newest is refused or held."""

from __future__ import annotations

from tractcast.data.demo import resolve_inputs
from tractcast.data.ingest import ingest_options, ingest_source
from tractcast.data.schema import TractLayer
from tractcast.data.series import IngestResult
from tractcast.data.watch import (
    DataWatcher,
    Release,
    ingest_release,
    national_history,
    schema_signature,
)
from tractcast.errors import DataHeld, DataRejected, InvalidInput
from tractcast.registry.store import RegistryReader
from tractcast.settings import Settings


def watcher_for(settings: Settings) -> DataWatcher:
    """The watcher of the configured source (the demo cases file when none is configured)."""
    source, _ = resolve_inputs(settings)
    if not source:
        raise InvalidInput("no data source is configured (TRACTCAST_DATA_SOURCE)")
    return DataWatcher(source, RegistryReader(settings.store).data_dir())


def current_release(settings: Settings) -> Release:
    """The release to use now: a new one if the source changed, else the last good one."""
    watcher = watcher_for(settings)
    release = watcher.check() or watcher.latest_good()
    if release is None:
        raise DataRejected("every release of the data source was refused; see the watcher state")
    return release


def ingest_current_release(settings: Settings, index: TractLayer) -> tuple[Release, IngestResult]:
    """Ingest the newest release; a refused or held one leaves the last good one in use.

    The report of a fallback names the release set aside and why (`refused_release`, or
    `held_release` for one that waits for an admin).
    """
    watcher = watcher_for(settings)
    new = watcher.check()
    refused: DataRejected | None = None
    if new is not None:
        try:
            return new, ingest_release(watcher, new, index, settings)
        except DataRejected as exc:
            refused = exc
    good = watcher.latest_good()
    if good is None:
        raise refused or DataRejected("no release of the data source can be used")
    result = ingest_source(good.path, index, **ingest_options(settings))
    if watcher.pinned() is None:  # a store from before pinning: its release in use is the pin
        watcher.pin(
            good.data_version, schema_signature(result.report), national_history(result.series)
        )
    if refused is not None and new is not None:
        key = "held_release" if isinstance(refused, DataHeld) else "refused_release"
        result.report[key] = {"data_version": new.data_version, "reason": refused.message}
    return good, result
