"""Two tract layers sharing one PostgreSQL database and one S3 bucket: each numbers, promotes and
rolls back its own versions, and a replica on a host without the stores finds each one's
champion and tract layer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.faults.processes import POSTGRES_SERVER, scratch_database

from tractcast.errors import Conflict
from tractcast.registry.registry import Registry
from tractcast.registry.remote import remote_bundle_source, remote_layer, serving_registry
from tractcast.serving.bundle import Bundle
from tractcast.settings import Settings
from tractcast.tract_layers import TractLayer, tract_layers

LAYERS = ("municipalities", "provinces")
TRACTS = {"municipalities": 5, "provinces": 2}  # the tracts of each layer's bundles


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database("tractcast_shared_layers") as name:
        yield f"{POSTGRES_SERVER}/{name}"


def tracts_file(folder: Path, name: str) -> Path:
    """A layer file of its own per layer: one square tract named after the layer."""
    square = [[[9.0, 45.0], [9.5, 45.0], [9.5, 45.5], [9.0, 45.5], [9.0, 45.0]]]
    feature = {
        "type": "Feature",
        "properties": {"code": f"{name}-1", "name": name},
        "geometry": {"type": "Polygon", "coordinates": square},
    }
    path = folder / f"{name}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


@pytest.fixture
def deployment(
    tmp_path: Path, database: str, bucket: str, endpoint: str, aws_env: None
) -> Settings:
    """A deployment of two layers whose only database and bucket are the shared ones."""
    entries = [
        f'[[layers]]\nname = "{name}"\ntracts = "{tracts_file(tmp_path, name).name}"\n'
        for name in LAYERS
    ]
    (tmp_path / "layers.toml").write_text("".join(entries))
    return Settings(
        store=tmp_path / "store",
        layers=str(tmp_path / "layers.toml"),
        database_url=database,
        s3_bucket=bucket,
        s3_endpoint_url=endpoint,
        serving_cache=tmp_path / "writer-cache",
    )


@pytest.fixture
def registries(deployment: Settings) -> Iterator[dict[str, Registry]]:
    opened = {layer.name: Registry.open(layer.settings) for layer in tract_layers(deployment)}
    yield opened
    for registry in opened.values():
        registry.close()


def replica_layers(deployment: Settings, tmp_path: Path) -> dict[str, TractLayer]:
    """The layers as a host without the store sees them (TRACTCAST_SERVING_SOURCE=s3)."""
    replica = deployment.with_(
        store=tmp_path / "replica-store-never-written",
        serving_source="s3",
        serving_cache=tmp_path / "replica-cache",
    )
    return {layer.name: layer for layer in tract_layers(replica)}


def register_and_promote(
    registry: Registry,
    layer: str,
    write_weights: Callable[[Path], None],
    tiny_bundle: Callable[..., Bundle],
) -> str:
    version = registry.register("lstm", write_weights, {"mae": 1.0}, {"data_version": "d1"})
    registry.add_bundle(tiny_bundle(version.version, tracts=TRACTS[layer]))
    registry.promote(version.version, reason="test")
    return version.version


def test_layers_sharing_a_database_and_bucket_keep_versions_and_champions_apart(
    registries: dict[str, Registry],
    deployment: Settings,
    tmp_path: Path,
    s3,  # type: ignore[no-untyped-def]
    bucket: str,
    write_weights: Callable[[Path], None],
    tiny_bundle: Callable[..., Bundle],
) -> None:
    promoted = {
        name: [register_and_promote(registry, name, write_weights, tiny_bundle) for _ in (1, 2)]
        for name, registry in registries.items()
    }
    assert promoted == {name: ["v0001-lstm", "v0002-lstm"] for name in LAYERS}  # per layer
    registries["provinces"].rollback(reason="test")
    for registry in registries.values():
        assert registry.mirror() is not None

    municipalities, provinces = registries["municipalities"], registries["provinces"]
    assert municipalities.serving_version() == "v0002-lstm"
    assert provinces.serving_version() == "v0001-lstm"
    assert municipalities.metadata.serving_bundle_id() == "v0002-lstm@d1"
    assert provinces.metadata.serving_bundle_id() == "v0001-lstm@d1"
    assert [e.kind for e in municipalities.list_events()] == ["promoted", "registered"] * 2
    assert [e.kind for e in provinces.list_events()][0] == "rolled_back"
    assert provinces.metadata.champion_history() == ["v0001-lstm", "v0002-lstm", "v0001-lstm"]
    with pytest.raises(Conflict, match="no earlier champion"):  # its own history, not the other's
        provinces.rollback(reason="test")

    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    tops = {item["Key"].split("/")[0] for item in listed}
    assert tops == {"layers"}  # nothing of either layer at the top of the bucket
    assert {f"layers/{name}/current" for name in LAYERS} <= {item["Key"] for item in listed}

    for name, layer in replica_layers(deployment, tmp_path).items():
        source = remote_bundle_source(layer.settings)
        bundle_id = source.current_bundle_id()
        assert bundle_id == registries[name].current_bundle_id()
        replica = serving_registry(layer.settings)
        try:
            assert replica.serving_version() == registries[name].serving_version()
            assert len(replica.bundle(bundle_id).tracts) == TRACTS[name]
            assert [v.version for v in replica.list_versions()] == ["v0001-lstm", "v0002-lstm"]
        finally:
            replica.close()
        copy = json.loads(remote_layer(layer.settings).path().read_text())
        assert copy["features"][0]["properties"]["name"] == name  # its own tract layer


def test_a_third_version_of_one_layer_is_numbered_past_its_own_only(
    registries: dict[str, Registry],
    write_weights: Callable[[Path], None],
    tiny_bundle: Callable[..., Bundle],
) -> None:
    for _ in range(3):
        register_and_promote(registries["provinces"], "provinces", write_weights, tiny_bundle)

    first = register_and_promote(
        registries["municipalities"], "municipalities", write_weights, tiny_bundle
    )

    assert first == "v0001-lstm"
    assert registries["provinces"].serving_version() == "v0003-lstm"
    assert registries["municipalities"].metadata.max_version_number() == 1
