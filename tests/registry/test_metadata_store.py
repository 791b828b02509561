"""SqlMetadataStore contract, run against SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from tests.faults.processes import free_port, missing_server

from tractcast.errors import InvalidInput, NotFound, Unavailable
from tractcast.registry.metadata import (
    Event,
    SqlMetadataStore,
    metadata_store_from_url,
    metadata_store_of,
)
from tractcast.registry.store import ModelVersion
from tractcast.settings import Settings

POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL of each backend, empty, removed afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    admin = create_engine(POSTGRES_URL)
    schema = f"tractcast_test_{secrets.token_hex(6)}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        missing_server(f"PostgreSQL at {POSTGRES_URL}", exc.orig)
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def meta(metadata_url: str) -> Iterator[SqlMetadataStore]:
    store = metadata_store_from_url(metadata_url)
    yield store
    store.close()


def model_version(version: str, data_version: str = "d1") -> ModelVersion:
    return ModelVersion(
        version=version,
        family=version.split("-", 1)[1],
        created_at="2024-03-01T06:00:00+00:00",
        data_version=data_version,
        metrics={"mae": 1.25, "per_horizon": [1.0, 1.5]},
        manifest={"version": version, "hyperparameters": {"units": 32}},
    )


def test_recorded_version_reads_back_as_a_dataclass(meta: SqlMetadataStore) -> None:
    meta.record_version(model_version("v0001-lstm"))
    found = meta.get_version("v0001-lstm")
    assert found == model_version("v0001-lstm")
    assert isinstance(found, ModelVersion)


def test_recording_a_version_twice_changes_nothing(meta: SqlMetadataStore) -> None:
    meta.record_version(model_version("v0001-lstm"))
    meta.record_version(model_version("v0001-lstm", data_version="other"))
    assert meta.get_version("v0001-lstm").data_version == "d1"


def test_unknown_version_is_not_found(meta: SqlMetadataStore) -> None:
    with pytest.raises(NotFound):
        meta.get_version("v0404-lstm")


def test_record_event_returns_the_event(meta: SqlMetadataStore) -> None:
    event = meta.record_event(
        "promoted", "v0002-lstm", from_version="v0001-lstm", reason="better", trigger="gate"
    )
    assert isinstance(event, Event)
    assert (event.kind, event.version, event.from_version) == (
        "promoted",
        "v0002-lstm",
        "v0001-lstm",
    )
    assert (event.reason, event.trigger) == ("better", "gate")
    assert event.at.endswith("+00:00") and event.id > 0
    assert meta.list_events() == [event]


def test_events_are_listed_newest_first(meta: SqlMetadataStore) -> None:
    for n in range(1, 6):
        meta.record_event("registered", f"v000{n}-lstm")
    assert [e.version for e in meta.list_events(limit=3)] == [
        "v0005-lstm",
        "v0004-lstm",
        "v0003-lstm",
    ]
    assert len(meta.list_events()) == 5


def test_events_can_be_filtered_by_kind(meta: SqlMetadataStore) -> None:
    meta.record_event("registered", "v0001-lstm")
    meta.record_event("rejected", "v0001-lstm", reason="worse than persistence")
    assert [e.kind for e in meta.list_events(kinds=["rejected"])] == ["rejected"]


def test_unknown_event_kind_is_refused(meta: SqlMetadataStore) -> None:
    with pytest.raises(InvalidInput):
        meta.record_event("deleted", "v0001-lstm")


def test_champion_history_follows_promotions_and_rollbacks(meta: SqlMetadataStore) -> None:
    meta.record_event("registered", "v0001-lstm")
    meta.record_event("promoted", "v0001-lstm")
    meta.record_event("registered", "v0002-lstm")
    meta.record_event("rejected", "v0002-lstm")
    meta.record_event("promoted", "v0003-lstm", from_version="v0001-lstm")
    meta.record_event("rolled_back", "v0001-lstm", from_version="v0003-lstm")
    assert meta.champion_history() == ["v0001-lstm", "v0003-lstm", "v0001-lstm"]


def test_an_existing_database_is_reused(metadata_url: str) -> None:
    first = metadata_store_from_url(metadata_url)
    first.record_event("registered", "v0001-lstm")
    first.close()
    second = metadata_store_from_url(metadata_url)
    assert [e.version for e in second.list_events()] == ["v0001-lstm"]
    second.ping()
    second.close()


def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    store = metadata_store_from_url(f"sqlite:///{tmp_path / 'a' / 'b' / 'meta.db'}")
    store.ping()
    store.close()
    assert (tmp_path / "a" / "b").is_dir()


def test_reads_from_a_database_that_does_not_answer_are_unavailable() -> None:
    down = SqlMetadataStore(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test")
    with pytest.raises(Unavailable, match="does not answer"):
        down.list_events()
    with pytest.raises(Unavailable, match="does not answer"):
        down.get_version("v0001-lstm")


def test_two_layers_of_one_database_each_see_only_their_own_rows(metadata_url: str) -> None:
    provinces = metadata_store_from_url(metadata_url, "provinces")
    municipalities = metadata_store_from_url(metadata_url, "municipalities")
    try:
        for store, bundle_id in ((provinces, "v0001-lstm@d1"), (municipalities, "v0001-lstm@d2")):
            store.record_version(model_version("v0001-lstm", bundle_id[-2:]))
            store.record_event("promoted", "v0001-lstm", reason=store.layer)
            store.record_serving(bundle_id, "v0001-lstm")
        provinces.record_version(model_version("v0002-lstm"))

        assert [v.version for v in provinces.list_versions()] == ["v0001-lstm", "v0002-lstm"]
        assert municipalities.get_version("v0001-lstm").data_version == "d2"
        assert [e.reason for e in municipalities.list_events()] == ["municipalities"]
        assert (provinces.serving_bundle_id(), municipalities.serving_bundle_id()) == (
            "v0001-lstm@d1",
            "v0001-lstm@d2",
        )
        assert (provinces.max_version_number(), municipalities.max_version_number()) == (2, 1)
    finally:
        provinces.close()
        municipalities.close()


def test_a_layers_own_store_file_keeps_its_rows_where_they_were(tmp_path: Path) -> None:
    store = tmp_path / "store" / "layers" / "provinces"
    shared = "postgresql+psycopg2://postgres@127.0.0.1:5432/shared"

    assert metadata_store_of(Settings(store=store, layer="provinces")).layer == "default"
    assert metadata_store_of(Settings(database_url=shared, layer="provinces")).layer == "provinces"
