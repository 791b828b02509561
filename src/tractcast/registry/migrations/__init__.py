"""Alembic migrations of the metadata database, run from code (no alembic.ini needed).

`upgrade_schema(engine)` brings any SQLAlchemy database to the newest revision; it is what
`SqlMetadataStore` calls before its first query, so every process that opens the metadata store
(registry, workers, CLI) finds the schema it expects. A database made before migrations existed
(tables present, no version table) is stamped at the first revision, whose tables it already has.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from tractcast.locks import FileLock

HERE = Path(__file__).resolve().parent
# Not Alembic's default name: a database shared with another Alembic user (MLflow) stays apart.
VERSION_TABLE = "tractcast_alembic_version"
FIRST_REVISION = "0001"
# pg_advisory_lock key: concurrent first starts (gunicorn workers, Celery workers) take turns.
_PG_LOCK_KEY = 0x7472_6163_7463
# Alembic's `context` is one module-level proxy: migrations in one process run one at a time.
_IN_PROCESS = threading.Lock()


def alembic_config(connection: Connection) -> Config:
    """An Alembic config over this folder that runs on the given connection."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    script = ScriptDirectory(str(HERE), version_locations=[str(HERE / "versions")])
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to `revision`; safe to call from many processes at once."""
    try:
        _migrate(engine, "upgrade", revision)
    except DBAPIError:
        # a process that does not take our locks (an older release) may have created the
        # tables first; losing that race is fine once the schema is there
        if revision != "head" or current_revision(engine) != head_revision():
            raise


def downgrade_schema(engine: Engine, revision: str) -> None:
    """Migrate the database down to `revision` ("base" drops every table)."""
    _migrate(engine, "downgrade", revision)


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    with _IN_PROCESS, _sqlite_file_lock(engine), engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            conn.commit()
        try:
            config = alembic_config(conn)
            if direction == "upgrade":
                if _made_before_migrations(conn):
                    command.stamp(config, FIRST_REVISION)
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
            conn.commit()
        finally:
            if postgres:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                conn.commit()


def _made_before_migrations(conn: Connection) -> bool:
    """Tables created by an older release's create_all, without a version table."""
    tables = set(inspect(conn).get_table_names())
    return {"versions", "events"} <= tables and VERSION_TABLE not in tables


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """SQLite has no advisory lock: processes migrating one database file take a file lock."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        yield
        return
    with FileLock(f"{database}.migrate-lock"):
        yield
