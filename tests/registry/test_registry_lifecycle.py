"""Promotion and rollback over the model store and the metadata store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tractcast.errors import Conflict, InvalidInput, NotFound, Unavailable
from tractcast.registry.metadata import Event, SqlMetadataStore
from tractcast.registry.registry import Registry, previous_champion
from tractcast.registry.store import LocalModelStore, ModelVersion

MakeVersion = Callable[..., ModelVersion]


def promote(store: LocalModelStore, meta: SqlMetadataStore, version: str) -> None:
    Registry(store, meta).promote(version, reason="test")


def test_register_version_records_it(
    store: LocalModelStore, metadata: SqlMetadataStore, write_weights: Callable[[Path], None]
) -> None:
    version = Registry(store, metadata).register(
        "lstm", write_weights, {"mae": 2.0}, {"data_version": "d1"}
    )
    assert metadata.get_version(version.version).metrics == {"mae": 2.0}
    assert [(e.kind, e.version) for e in metadata.list_events()] == [("registered", "v0001-lstm")]


def test_promote_points_current_at_the_versions_bundle(
    store: LocalModelStore, metadata: SqlMetadataStore, make_version: MakeVersion
) -> None:
    version = make_version().version
    event = Registry(store, metadata).promote(version, reason="first", trigger="gate")
    assert (event.kind, event.version, event.from_version) == ("promoted", version, None)
    assert event.trigger == "gate"
    assert store.current_bundle_id() == f"{version}@d1"
    assert metadata.get_version(version).version == version


def test_promote_unknown_version_is_not_found(
    store: LocalModelStore, metadata: SqlMetadataStore
) -> None:
    with pytest.raises(NotFound):
        Registry(store, metadata).promote("v0007-lstm", reason="test")
    with pytest.raises(InvalidInput):
        Registry(store, metadata).promote("../../etc", reason="test")
    assert metadata.list_events() == []


def test_promote_without_a_bundle_is_a_conflict(
    store: LocalModelStore, metadata: SqlMetadataStore, make_version: MakeVersion
) -> None:
    version = make_version(bundle=False).version
    with pytest.raises(Conflict):
        Registry(store, metadata).promote(version, reason="test")
    assert store.current_bundle_id() is None


def test_promote_a_broken_bundle_is_rejected_and_the_champion_stays(
    store: LocalModelStore, metadata: SqlMetadataStore, make_version: MakeVersion
) -> None:
    good, bad = make_version().version, make_version().version
    promote(store, metadata, good)
    checksum = store.root / "bundles" / f"{bad}@d1" / "bundle.sha256"
    checksum.chmod(0o644)
    checksum.write_text("0" * 64)
    with pytest.raises(Unavailable):
        promote(store, metadata, bad)
    assert store.serving_version() == good
    assert metadata.list_events()[0].kind == "rejected"


def test_rollback_restores_previous_version(
    store: LocalModelStore, metadata: SqlMetadataStore, make_version: MakeVersion
) -> None:
    first, second = make_version().version, make_version().version
    promote(store, metadata, first)
    promote(store, metadata, second)
    event = Registry(store, metadata).rollback(reason="live error rose", trigger="monitor")
    assert (event.kind, event.version, event.from_version) == ("rolled_back", first, second)
    assert store.current_bundle_id() == f"{first}@d1"
    assert metadata.champion_history() == [first, second, first]


def test_rolling_back_twice_walks_further_back(
    store: LocalModelStore, metadata: SqlMetadataStore, make_version: MakeVersion
) -> None:
    first, second, third = (make_version().version for _ in range(3))
    for version in (first, second, third):
        promote(store, metadata, version)
    assert Registry(store, metadata).rollback(reason="bad").version == second
    assert Registry(store, metadata).rollback(reason="also bad").version == first
    with pytest.raises(Conflict):
        Registry(store, metadata).rollback(reason="nothing left")
    assert store.serving_version() == first


def test_rollback_to_a_named_version(
    store: LocalModelStore, metadata: SqlMetadataStore, make_version: MakeVersion
) -> None:
    first, second, third = (make_version().version for _ in range(3))
    for version in (first, second, third):
        promote(store, metadata, version)
    event = Registry(store, metadata).rollback(first, reason="known good")
    assert (event.version, event.from_version) == (first, third)
    with pytest.raises(Conflict, match="already serving"):
        Registry(store, metadata).rollback(first, reason="again")


def test_rollback_without_an_earlier_champion_is_a_conflict(
    store: LocalModelStore, metadata: SqlMetadataStore, make_version: MakeVersion
) -> None:
    with pytest.raises(Conflict):
        Registry(store, metadata).rollback(reason="nothing serves")
    promote(store, metadata, make_version().version)
    with pytest.raises(Conflict):
        Registry(store, metadata).rollback(reason="only one champion")


def test_current_model_describes_what_serves(
    store: LocalModelStore, metadata: SqlMetadataStore, make_version: MakeVersion
) -> None:
    with pytest.raises(NotFound):
        Registry(store, metadata).current_model()
    version = make_version(data_version="d7").version
    promote(store, metadata, version)
    assert Registry(store, metadata).current_model() == {
        "version": version,
        "family": "lstm",
        "bundle_id": f"{version}@d7",
        "data_version": "d7",
        "metrics": {"mae": 1.0},
        "as_of": "2024-03-01",
        "created_at": store.get_version(version).created_at,
    }


def _events(*steps: tuple[str, str]) -> list[Event]:
    return [
        Event(n, "t", kind, version, None, "", "manual") for n, (kind, version) in enumerate(steps)
    ]


@pytest.mark.parametrize(
    ("steps", "current", "expected"),
    [
        ([], None, None),
        ([("promoted", "v1")], "v1", None),
        ([("promoted", "v1"), ("promoted", "v2")], "v2", "v1"),
        ([("promoted", "v1"), ("promoted", "v2"), ("promoted", "v2")], "v2", "v1"),
        ([("promoted", "v1"), ("promoted", "v2"), ("rolled_back", "v1")], "v1", None),
        ([("promoted", "v1"), ("promoted", "v2"), ("promoted", "v1")], "v1", "v2"),
        ([("promoted", "v1"), ("promoted", "v2")], "v9", "v2"),
    ],
)
def test_previous_champion_reads_the_history(
    steps: list[tuple[str, str]], current: str | None, expected: str | None
) -> None:
    assert previous_champion(_events(*steps), current) == expected
