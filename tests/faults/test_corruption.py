"""A corrupted bundle or `.h5` is refused at promotion, and the old one keeps serving."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from tests.faults.conftest import Registry

from services.registry.app import create_app
from tractcast.errors import Unavailable
from tractcast.registry.registry import Registry as ModelRegistry
from tractcast.registry.store import RegistryReader
from tractcast.serving.holder import BundleHolder
from tractcast.settings import Settings

TOKEN = "faults-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def overwrite(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)  # versions and bundles are sealed read-only
    path.write_bytes(data)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    overwrite(path, bytes(data))


def truncate(path: Path) -> None:
    overwrite(path, path.read_bytes()[:100])


@pytest.fixture
def client(registry: Registry) -> Iterator[FlaskClient]:
    settings = Settings(store=registry.root, admin_token=TOKEN)
    app = create_app(settings)
    yield app.test_client()
    app.extensions["tractcast.registry"].close()


CORRUPTIONS = {
    "bit flip in bundle.json": ("bundle", "bundle.json", flip_a_byte),
    "truncated bundle.json": ("bundle", "bundle.json", truncate),
    "bit flip in tracts.bin": ("bundle", "tracts.bin", flip_a_byte),
    "truncated tracts.bin": ("bundle", "tracts.bin", truncate),
    "tracts.bin deleted": ("bundle", "tracts.bin", lambda path: path.unlink()),
    "bit flip in model.h5": ("version", "model.h5", flip_a_byte),
    "truncated model.h5": ("version", "model.h5", truncate),
    "model.h5 deleted": ("version", "model.h5", lambda path: path.unlink()),
}


def corrupt(registry: Registry, version: str, how: str) -> str:
    where, name, damage = CORRUPTIONS[how]
    if where == "bundle":
        directory = registry.root / "bundles" / registry.bundle_of(version)
    else:
        directory = registry.root / "versions" / version
    damage(directory / name)
    return how


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_promoting_a_corrupted_version_is_refused_and_the_champion_keeps_serving(
    registry: Registry, client: FlaskClient, how: str
) -> None:
    holder = BundleHolder(RegistryReader(registry.root), check_interval=0)
    serving = holder.bundle().bundle_id
    corrupt(registry, registry.candidate, how)

    response = client.post("/v1/admin/promote", headers=ADMIN, json={"version": registry.candidate})

    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "unavailable" and "corrupt" in body["message"]
    assert client.get("/v1/models/current").get_json()["version"] == registry.champion
    assert holder.bundle().bundle_id == serving
    refused = registry.metadata.list_events(limit=1)[0]
    assert (refused.kind, refused.version) == ("rejected", registry.candidate)


def test_rolling_back_to_a_corrupted_version_is_refused_too(registry: Registry) -> None:
    ModelRegistry(registry.store, registry.metadata).promote(registry.candidate, reason="better")
    corrupt(registry, registry.champion, "bit flip in model.h5")
    with pytest.raises(Unavailable, match="model.h5 fails its checksum"):
        ModelRegistry(registry.store, registry.metadata).rollback(reason="try")
    assert registry.store.current_bundle_id() == registry.bundle_of(registry.candidate)


def test_a_current_link_moved_to_a_corrupted_bundle_behind_the_registry_is_not_served(
    registry: Registry,
) -> None:
    # e.g. a store restored from a bad backup: the API keeps the bundle it has
    holder = BundleHolder(RegistryReader(registry.root), check_interval=0)
    serving = holder.bundle().bundle_id
    target = registry.bundle_of(registry.candidate)
    corrupt(registry, registry.candidate, "truncated bundle.json")
    link = registry.root / ".moved"
    link.symlink_to(Path("bundles") / target)
    os.replace(link, registry.root / "current")
    assert holder.bundle().bundle_id == serving
