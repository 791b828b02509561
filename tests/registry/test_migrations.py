"""Alembic migrations: an empty SQLite or PostgreSQL database gets exactly the models' tables."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from tests.faults.processes import POSTGRES_SERVER, scratch_database

from tractcast.registry.metadata import SCHEMA, SqlMetadataStore
from tractcast.registry.migrations import (
    VERSION_TABLE,
    current_revision,
    downgrade_schema,
    head_revision,
    upgrade_schema,
)
from tractcast.registry.store import metadata_url
from tractcast.runner import child_env
from tractcast.settings import Settings

MODEL_TABLES = {"versions", "events", "serving"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database of each backend, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with scratch_database("tractcast_migrations_test") as name:
        yield f"{POSTGRES_SERVER}/{name}"


@pytest.fixture
def engine(empty_database: str) -> Iterator[Engine]:
    engine = create_engine(empty_database)
    yield engine
    engine.dispose()


def differences(engine: Engine) -> list:
    """What Alembic's autogenerate sees between the database and the models."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        return compare_metadata(context, SCHEMA)


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_of_an_empty_database_creates_exactly_the_models_tables(engine: Engine) -> None:
    assert current_revision(engine) is None
    upgrade_schema(engine)
    assert tables(engine) == MODEL_TABLES | {VERSION_TABLE}
    assert differences(engine) == []
    assert current_revision(engine) == head_revision()


def test_downgrade_to_base_drops_the_tables_and_upgrade_brings_them_back(engine: Engine) -> None:
    upgrade_schema(engine)
    downgrade_schema(engine, "base")
    assert tables(engine) - {VERSION_TABLE} == set()
    assert current_revision(engine) is None
    upgrade_schema(engine)
    assert differences(engine) == []
    assert current_revision(engine) == head_revision()


def test_upgrading_twice_changes_nothing_and_keeps_the_data(empty_database: str) -> None:
    first = SqlMetadataStore(empty_database)
    first.record_event("registered", "v0001-lstm", reason="trained")
    first.close()
    second = SqlMetadataStore(empty_database)
    assert [e.version for e in second.list_events()] == ["v0001-lstm"]
    second.close()


def test_a_database_made_before_migrations_is_adopted_with_its_rows(engine: Engine) -> None:
    # what releases before Alembic did: the two tables they knew, with no version table
    upgrade_schema(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (at, kind, version, reason, trigger) "
                "VALUES ('2024-03-01T00:00:00+00:00', 'promoted', 'v0001-lstm', 'old', 'manual')"
            )
        )
    store = SqlMetadataStore(engine.url.render_as_string(hide_password=False))
    assert store.champion_history() == ["v0001-lstm"]
    store.close()
    assert current_revision(engine) == head_revision()
    assert differences(engine) == []


def test_rows_of_a_database_of_one_layer_stay_that_layers_after_the_upgrade(
    engine: Engine,
) -> None:
    upgrade_schema(engine, "0003")  # a deployment of one layer, before layers had rows
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO versions (version, family, created_at, data_version, metrics, "
                "manifest) VALUES ('v0001-lstm', 'lstm', '2024-03-01', 'd1', '{}', '{}')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO events (at, kind, version, reason, trigger) "
                "VALUES ('2024-03-01T00:00:00+00:00', 'promoted', 'v0001-lstm', '', 'manual')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO serving (slot, bundle_id, version, updated_at) "
                "VALUES ('current', 'v0001-lstm@d1', 'v0001-lstm', '2024-03-01')"
            )
        )
    url = engine.url.render_as_string(hide_password=False)
    default, other = SqlMetadataStore(url), SqlMetadataStore(url, "provinces")
    try:
        assert [version.version for version in default.list_versions()] == ["v0001-lstm"]
        assert default.champion_history() == ["v0001-lstm"]
        assert default.serving_bundle_id() == "v0001-lstm@d1"
        assert default.max_version_number() == 1
        assert other.list_versions() == [] and other.list_events() == []
        assert other.serving_bundle_id() is None and other.max_version_number() == 0
    finally:
        default.close()
        other.close()
    assert current_revision(engine) == head_revision()
    assert differences(engine) == []
    downgrade_schema(engine, "0003")  # back to one layer: its rows are kept
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM versions")).scalars().all() == ["v0001-lstm"]


def test_processes_opening_a_new_database_at_once_all_find_the_schema(
    empty_database: str,
) -> None:
    errors: list[BaseException] = []

    def open_and_write(n: int) -> None:
        store = SqlMetadataStore(empty_database)
        try:
            store.record_event("registered", f"v000{n}-lstm")
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    store = SqlMetadataStore(empty_database)
    assert len(store.list_events()) == 4
    store.close()


def test_the_migrate_command_upgrades_the_configured_database_and_says_where_it_is(
    tmp_path: Path,
) -> None:
    settings = Settings(store=tmp_path / "store")
    tmp_path.joinpath("store").mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "tractcast.registry.migrations", "upgrade"],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"at {head_revision()} (newest: {head_revision()})"
    engine = create_engine(metadata_url(settings))
    assert tables(engine) == MODEL_TABLES | {VERSION_TABLE}
    engine.dispose()
