"""The portal watcher: probe a source cheaply, download a changed one once, keep raw snapshots.

Snapshots live under `<folder>/<data_version>/`, in the folder the registry names in the store
(the data version is the content hash of the snapshot, so the same bytes always give the same
version); the watcher's state (validators, releases, refusals) is one JSON file beside them.
A release that ingestion refuses is marked rejected and never becomes the data in use: the last
good release stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tractcast.clock import utc_now
from tractcast.data.sources import open_source
from tractcast.data.sources.base import (
    Source,
    State,
    safe_name,
    sha256_file,
    snapshot_version,
    state_hashes,
)
from tractcast.errors import DataHeld, DataRejected, NotFound
from tractcast.locks import FileLock
from tractcast.settings import Settings

if TYPE_CHECKING:
    from tractcast.data.ingest import IngestResult
    from tractcast.data.schema import TractLayer

TIMESPEC = "microseconds"  # releases are ordered by fetched_at, also within a second


@dataclass(frozen=True)
class Release:
    """One downloaded snapshot of the source: its version, where it is, when, which files."""

    data_version: str
    path: Path  # the single file, or the snapshot directory (both accepted by ingest_source)
    fetched_at: str
    files: tuple[str, ...]


class DataWatcher:
    """Watches one source; snapshots and state in the folder it is given (the registry names it)."""

    def __init__(self, source_uri: str, directory: str | Path, **source_options: Any) -> None:
        self.source_uri = str(source_uri)
        self.root = Path(directory)
        self.source_options = source_options
        key = hashlib.sha256(self.source_uri.encode()).hexdigest()[:12]
        self.state_path = self.root / f"watch-{key}.json"

    def source(self) -> Source:
        return open_source(self.source_uri, **self.source_options)

    def check(self) -> Release | None:
        """Probe the source: None when nothing changed (nothing downloaded), else the release."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.locked():
            state = self.read_state()
            latest = state.get("latest")
            previous = (
                state.get("source") if latest and self.snapshot_dir(latest).exists() else None
            )
            source = self.source()
            probe = source.probe(previous)
            if previous is not None and probe.unchanged:
                self.write_state({**state, "source": probe.state, "checked_at": utc_now(TIMESPEC)})
                return None
            incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
            try:
                fetched = source.fetch(probe, incoming)
                self.complete_snapshot(incoming, fetched.state, set(fetched.written), latest)
                version = snapshot_version(state_hashes(fetched.state))
                now = utc_now(TIMESPEC)
                state = {**state, "source": fetched.state, "checked_at": now}
                if version == latest:
                    self.write_state(state)
                    return None
                target = self.snapshot_dir(version)
                if not target.exists():
                    os.replace(incoming, target)
            finally:
                shutil.rmtree(incoming, ignore_errors=True)
            files = tuple(sorted(fetched.state["entries"]))
            releases = state.get("releases", {})
            releases[version] = {"fetched_at": now, "files": list(files)}
            self.write_state({**state, "latest": version, "releases": releases})
            return self.release(version, releases[version])

    def complete_snapshot(
        self, incoming: Path, state: State, written: set[str], latest: str | None
    ) -> None:
        """Link the entries not downloaded this time from the previous snapshot (same bytes)."""
        old = self.snapshot_dir(latest) if latest else None
        for name, entry in state["entries"].items():
            if name in written:
                continue
            source = old / safe_name(name) if old else None
            target = incoming / safe_name(name)
            if source is None or not source.is_file() or sha256_file(source) != entry["sha256"]:
                raise DataRejected(f"{name}: the previous snapshot lost this file; check again")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)

    def latest_good(self) -> Release | None:
        """The newest release neither rejected nor held (None before the first good download)."""
        state = self.read_state()
        rejected = {**state.get("rejected", {}), **state.get("held", {})}
        releases = state.get("releases", {})
        for version, info in sorted(
            releases.items(), key=lambda kv: kv[1]["fetched_at"], reverse=True
        ):
            if version not in rejected and self.snapshot_dir(version).exists():
                return self.release(version, info)
        return None

    def mark_rejected(self, release: Release, reason: str) -> None:
        """Never use this release again; the last good one stays in use."""
        with self.locked():
            state = self.read_state()
            rejected = state.get("rejected", {})
            rejected[release.data_version] = {"reason": reason, "at": utc_now(TIMESPEC)}
            self.write_state({**state, "rejected": rejected})

    def rejections(self) -> dict[str, dict[str, str]]:
        """Data version -> why it was refused and when."""
        return dict(self.read_state().get("rejected", {}))

    def pinned(self) -> dict[str, Any] | None:
        """The accepted schema and published history new releases are compared with."""
        return self.read_state().get("pinned")

    def pin(self, version: str, schema: dict[str, str], history: dict[str, float]) -> None:
        """Accept a release: its schema and history become what later ones are compared with."""
        with self.locked():
            state = self.read_state()
            pinned = {"data_version": version, "schema": schema, "history": history}
            held = {k: v for k, v in state.get("held", {}).items() if k != version}
            self.write_state({**state, "pinned": pinned | {"at": utc_now(TIMESPEC)}, "held": held})

    def hold(
        self, release: Release, reason: str, schema: dict[str, str], history: dict[str, float]
    ) -> None:
        """Keep a release aside until an admin accepts it; the last good one stays in use."""
        with self.locked():
            state = self.read_state()
            held = state.get("held", {})
            held[release.data_version] = {
                "reason": reason,
                "at": utc_now(TIMESPEC),
                "schema": schema,
                "history": history,
            }
            self.write_state({**state, "held": held})

    def held(self) -> dict[str, dict[str, Any]]:
        """Data version -> why it is held, when, and the schema it was inferred with."""
        return dict(self.read_state().get("held", {}))

    def accept(self, version: str) -> dict[str, Any]:
        """An admin accepts a held release: it is pinned and becomes usable (NotFound if not
        held)."""
        record = self.held().get(version)
        if record is None:
            raise NotFound(f"no held data release {version!r} (held: {sorted(self.held())})")
        self.pin(version, record["schema"], record["history"])
        return {"data_version": version, "reason": record["reason"], "schema": record["schema"]}

    def snapshot_dir(self, version: str) -> Path:
        return self.root / version

    def release(self, version: str, info: dict[str, Any]) -> Release:
        files = tuple(info["files"])
        directory = self.snapshot_dir(version)
        path = directory / files[0] if len(files) == 1 else directory
        return Release(version, path, info["fetched_at"], files)

    def read_state(self) -> dict[str, Any]:
        if not self.state_path.is_file():
            return {"uri": self.source_uri}
        return json.loads(self.state_path.read_text())

    def write_state(self, state: dict[str, Any]) -> None:
        """Write the state atomically (temp file, then rename)."""
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=".state-")
        with os.fdopen(handle, "w") as stream:
            json.dump({**state, "uri": self.source_uri}, stream, indent=1, sort_keys=True)
        os.replace(temporary, self.state_path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One check at a time per source (several workers may share the store)."""
        with FileLock(self.state_path.with_suffix(".lock")):
            yield


SCHEMA_KEYS = (
    "format", "table_layout", "date_column", "tract_column", "layer_property", "value_column",
    "value_kind",
)  # fmt: skip


def schema_signature(report: dict[str, Any]) -> dict[str, str]:
    """What a release was inferred to be: layout, columns (spelling ignored), kind, date source."""
    from tractcast.data.layouts import canonical_header

    signature = {key: canonical_header(report.get(key) or "") for key in SCHEMA_KEYS}
    signature["date_source"] = str(report.get("evidence", {}).get("date", {}).get("source", ""))
    return signature


def national_history(series: Any) -> dict[str, float]:
    """National new cases per day (YYYY-MM-DD -> count) of an ingested series."""
    daily = series.groupby("date")["new_cases"].sum()
    return {f"{day:%Y-%m-%d}": round(float(value), 3) for day, value in daily.items()}


def rewritten_share(old: dict[str, float], new: dict[str, float]) -> tuple[float, int]:
    """Share of the cases already published that a new history moves or changes (sum of the
    absolute daily changes over the days both hold, over their cases), and those days."""
    days = [day for day in old if day in new]
    published = sum(abs(old[day]) for day in days)
    changed = sum(abs(new[day] - old[day]) for day in days)
    return (changed / published if published else 0.0), len(days)


def guard_release(
    watcher: DataWatcher, release: Release, result: IngestResult, tolerance: float
) -> None:
    """Pin the first accepted release; hold (DataHeld) one that infers differently from the pin
    or rewrites more than `tolerance` of the published national daily cases."""
    schema = schema_signature(result.report)
    history = national_history(result.series)
    pinned = watcher.pinned()
    if pinned is None or pinned["data_version"] == release.data_version:
        watcher.pin(release.data_version, schema, history)
        return
    reasons = []
    changed = {
        key: f"{pinned['schema'].get(key)!r} -> {value!r}"
        for key, value in schema.items()
        if pinned["schema"].get(key) != value
    }
    if changed:
        reasons.append(
            "it is inferred differently from the pinned release "
            f"{pinned['data_version']} ({', '.join(f'{k}: {v}' for k, v in changed.items())})"
        )
    share, days = rewritten_share(pinned["history"], history)
    if share > tolerance:
        reasons.append(
            f"it rewrites {share:.1%} of the national daily cases already published over "
            f"{days} days (more than TRACTCAST_HISTORY_TOLERANCE={tolerance:g})"
        )
    if reasons:
        reason = (
            f"release {release.data_version} held: {'; '.join(reasons)}; the last good release "
            f"stays in use until an admin accepts it (tractcast accept-data "
            f"{release.data_version}, or POST /v1/admin/data/accept)"
        )
        watcher.hold(release, reason, schema, history)
        raise DataHeld(reason)
    watcher.pin(release.data_version, schema, history)


def ingest_release(
    watcher: DataWatcher, release: Release, index: TractLayer, settings: Settings
) -> IngestResult:
    """Ingest a new release and guard it against the pinned one; a release ingestion refuses is
    marked rejected, one the guard holds waits for an admin (both raise DataRejected)."""
    from tractcast.data.ingest import ingest_options, ingest_source

    try:
        result = ingest_source(release.path, index, **ingest_options(settings))
    except DataRejected as exc:
        watcher.mark_rejected(release, exc.message)
        raise
    guard_release(watcher, release, result, settings.history_tolerance)
    return result
