"""A small store with a serving champion (v0001) and a candidate (v0002), both with bundles."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tractcast.registry.metadata import SqlMetadataStore
from tractcast.registry.registry import Registry as ModelRegistry
from tractcast.registry.store import LocalModelStore
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, bundle_id_for

WEIGHTS = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 64  # stands in for a Keras model.h5


def tiny_bundle(version: str, data_version: str = "d1") -> Bundle:
    days = tuple(
        ForecastDay(f"2024-03-{day:02d}", 2.0 + day, 1.0 + day, 3.0 + day) for day in range(2, 16)
    )
    return Bundle(
        bundle_id=bundle_id_for(version, data_version),
        model_version=version,
        data_version=data_version,
        as_of="2024-03-01",
        created_at="2024-03-01T06:00:00+00:00",
        horizon=14,
        tracts={f"T{i}": TractForecast(f"T{i}", "2024-03-01", 100 * i, i, days) for i in range(3)},
    )


def write_weights(directory: Path) -> None:
    (directory / "model.h5").write_bytes(WEIGHTS)


@dataclass
class Registry:
    root: Path
    store: LocalModelStore
    metadata: SqlMetadataStore
    champion: str  # v0001-lstm, serving
    candidate: str  # v0002-lstm, registered with a bundle, not serving

    def bundle_of(self, version: str) -> str:
        bundle_id = self.store.latest_bundle_for(version)
        assert bundle_id is not None
        return bundle_id

    def register(self) -> str:
        """Register one more version with a bundle, the way the pipeline does."""
        version = ModelRegistry(self.store, self.metadata).register(
            "lstm",
            write_weights,
            metrics={"mae": 1.0},
            manifest={"data_version": "d1", "git_commit": "abc123"},
            trigger="test",
        )
        self.store.add_bundle(tiny_bundle(version.version))
        return version.version


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    root = tmp_path / "store"
    root.mkdir()  # the metadata database's migration lock lies beside it
    store = LocalModelStore(root)
    metadata = SqlMetadataStore(f"sqlite:///{root}/metadata.db")
    made = Registry(root, store, metadata, "", "")
    made.champion = made.register()
    ModelRegistry(store, metadata).promote(made.champion, reason="first", trigger="test")
    made.candidate = made.register()
    yield made
    metadata.close()
