"""What happened to model versions: registrations, promotions, rejections, rollbacks, in SQL.

One database may hold several tract layers: a store reads and writes only the rows of its layer
(a deployment of one layer: "default"), so layers sharing a database number their versions,
champions and what serves apart."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, insert, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from tractcast.clock import utc_now
from tractcast.errors import InvalidInput, NotFound, Unavailable
from tractcast.registry.migrations import upgrade_schema
from tractcast.registry.store import ModelVersion, metadata_url, version_number
from tractcast.registry.tables import (
    CHAMPION_KINDS,
    DATA_EVENT_KINDS,
    EVENT_KINDS,
    MODEL_EVENT_KINDS,
    SCHEMA,
    events_table,
    serving_table,
    versions_table,
)
from tractcast.settings import DEFAULT_LAYER, Settings

__all__ = [
    "CHAMPION_KINDS",
    "DATA_EVENT_KINDS",
    "EVENT_KINDS",
    "MODEL_EVENT_KINDS",
    "SCHEMA",
    "Event",
    "SqlMetadataStore",
    "metadata_store_from_url",
    "metadata_store_of",
]


SERVING_SLOT = "current"


@dataclass(frozen=True)
class Event:
    id: int
    at: str
    kind: str
    version: str
    from_version: str | None
    reason: str
    trigger: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SqlMetadataStore:
    """Versions and lifecycle events of one tract layer in any SQLAlchemy database (SQLite,
    PostgreSQL)."""

    def __init__(self, url: str, layer: str = DEFAULT_LAYER) -> None:
        self.url = url
        self.layer = layer
        self._engine: Engine = _engine_for(url)
        self._ready = False

    def record_version(self, version: ModelVersion) -> None:
        """Remember a registered version; recording it again changes nothing (it is immutable)."""
        row = {
            "version": version.version,
            "layer": self.layer,
            "family": version.family,
            "created_at": version.created_at,
            "data_version": version.data_version,
            "metrics": version.metrics,
            "manifest": version.manifest,
        }
        engine = self._tables()
        try:
            with engine.begin() as conn:
                exists = conn.execute(
                    select(versions_table.c.version).where(
                        versions_table.c.version == version.version,
                        versions_table.c.layer == self.layer,
                    )
                ).first()
                if exists is None:
                    conn.execute(insert(versions_table).values(**row))
        except IntegrityError:
            pass  # a concurrent writer recorded the same version first

    def get_version(self, version: str) -> ModelVersion:
        """The recorded version, or NotFound."""
        with self._read() as conn:
            row = conn.execute(
                select(versions_table).where(
                    versions_table.c.version == version, versions_table.c.layer == self.layer
                )
            ).first()
        if row is None:
            raise NotFound(f"no recorded model version {version}")
        return _model_version(row)

    def list_versions(self) -> list[ModelVersion]:
        """Every recorded version, oldest (lowest number) first."""
        with self._read() as conn:
            rows = conn.execute(
                select(versions_table).where(versions_table.c.layer == self.layer)
            ).all()
        found = [_model_version(row) for row in rows]
        return sorted(found, key=lambda version: version_number(version.version))

    def record_event(
        self,
        kind: str,
        version: str,
        *,
        from_version: str | None = None,
        reason: str = "",
        trigger: str = "manual",
    ) -> Event:
        """Append one lifecycle event and return it."""
        if kind not in EVENT_KINDS:
            raise InvalidInput(f"unknown event kind {kind!r}, expected one of {EVENT_KINDS}")
        event = Event(
            id=0,  # the database numbers it
            at=utc_now("milliseconds"),  # events of one second keep their order
            kind=kind,
            version=version,
            from_version=from_version,
            reason=reason,
            trigger=trigger,
        )
        values = {key: value for key, value in event.to_dict().items() if key != "id"}
        values["layer"] = self.layer
        with self._tables().begin() as conn:
            result = conn.execute(insert(events_table).values(**values))
            key = result.inserted_primary_key
        if key is None:  # never for a one-row insert
            raise Unavailable("the metadata database numbered no event")
        return replace(event, id=int(key[0]))

    def list_events(
        self, limit: int | None = 100, kinds: Iterable[str] | None = None
    ) -> list[Event]:
        """Events newest first, optionally only some kinds."""
        query = (
            select(events_table)
            .where(events_table.c.layer == self.layer)
            .order_by(events_table.c.id.desc())
        )
        if kinds is not None:
            query = query.where(events_table.c.kind.in_(list(kinds)))
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            Event(
                id=row.id,
                at=row.at,
                kind=row.kind,
                version=row.version,
                from_version=row.from_version,
                reason=row.reason,
                trigger=row.trigger,
            )
            for row in rows
        ]

    def champion_history(self) -> list[str]:
        """The versions made champion, in the order they were made so (promotions and rollbacks)."""
        query = (
            select(events_table.c.version)
            .where(events_table.c.kind.in_(CHAMPION_KINDS), events_table.c.layer == self.layer)
            .order_by(events_table.c.id)
        )
        with self._read() as conn:
            return [row.version for row in conn.execute(query)]

    def record_serving(self, bundle_id: str, version: str, slot: str = SERVING_SLOT) -> None:
        """Remember which bundle serves now (after the store's `current` moved to it)."""
        row = {
            "slot": slot,
            "layer": self.layer,
            "bundle_id": bundle_id,
            "version": version,
            "updated_at": utc_now(),
        }
        with self._tables().begin() as conn:
            conn.execute(delete(serving_table).where(*self._slot(slot)))
            conn.execute(insert(serving_table).values(**row))

    def serving_bundle_id(self, slot: str = SERVING_SLOT) -> str | None:
        """The bundle recorded as serving, or None before the first promotion."""
        with self._read() as conn:
            row = conn.execute(select(serving_table.c.bundle_id).where(*self._slot(slot))).first()
        return None if row is None else str(row.bundle_id)

    def max_version_number(self) -> int:
        """The highest sequence number of a recorded version of the layer (0 for none): hosts
        that do not share a store number their versions past it, so no two hosts write the same
        id."""
        query = select(versions_table.c.version).where(versions_table.c.layer == self.layer)
        with self._read() as conn:
            names = conn.execute(query).scalars().all()
        numbers = [int(name[1 : name.index("-")]) for name in names if "-" in name]
        return max(numbers, default=0)

    def ping(self) -> None:
        """Raise Unavailable unless the database answers."""
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise Unavailable("the metadata database does not answer") from exc

    def close(self) -> None:
        self._engine.dispose()

    def _slot(self, slot: str) -> tuple[Any, ...]:
        return serving_table.c.slot == slot, serving_table.c.layer == self.layer

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for reading; Unavailable (not a driver error) when the database is down."""
        try:
            with self._tables().connect() as conn:
                yield conn
        except OperationalError as exc:
            raise Unavailable("the metadata database does not answer") from exc

    def _tables(self) -> Engine:
        # migrated on first use, not at construction, so opening a store is free
        if not self._ready:
            upgrade_schema(self._engine)
            self._ready = True
        return self._engine


def _model_version(row: Any) -> ModelVersion:
    return ModelVersion(
        version=row.version,
        family=row.family,
        created_at=row.created_at,
        data_version=row.data_version,
        metrics=dict(row.metrics or {}),
        manifest=dict(row.manifest or {}),
    )


def metadata_store_of(settings: Settings) -> SqlMetadataStore:
    """The metadata store of the settings' layer, in the database they name. The SQLite file in
    a layer's own store holds that layer alone: its rows stay under "default", where they were
    before databases held several layers."""
    layer = settings.layer if settings.database_url else DEFAULT_LAYER
    return metadata_store_from_url(metadata_url(settings), layer)


def metadata_store_from_url(url: str, layer: str = DEFAULT_LAYER) -> SqlMetadataStore:
    """The store of `layer`'s rows in the database a URL names (any SQLAlchemy database URL)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidInput(f"not a database URL: {url[:80]!r}") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # best effort: when the directory cannot be made, the first query says so
        with contextlib.suppress(OSError):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return SqlMetadataStore(url, layer)


def _engine_for(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True)
