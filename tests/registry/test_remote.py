"""Serving from S3 and the metadata database, on a host that does not share the store: moto's
S3 server over HTTP on loopback, and SQLite standing in for the shared database."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.faults.processes import free_port

from tractcast.errors import Unavailable
from tractcast.registry.metadata import SqlMetadataStore
from tractcast.registry.mirror import COMPLETE, S3ArtifactMirror, s3_client
from tractcast.registry.registry import Registry
from tractcast.registry.remote import RemoteBundleSource, RemoteLayer
from tractcast.registry.store import LocalModelStore, ModelVersion
from tractcast.serving.bundle import Bundle
from tractcast.serving.holder import BundleHolder
from tractcast.settings import Settings


@pytest.fixture
def registry(store: LocalModelStore, metadata: SqlMetadataStore) -> Registry:
    return Registry(store, metadata)


def source_over(
    mirror: S3ArtifactMirror, metadata: SqlMetadataStore | None, cache: Path
) -> RemoteBundleSource:
    serving = None if metadata is None else metadata.serving_bundle_id
    return RemoteBundleSource(mirror, serving, cache, probe_interval=0.0)


def unreachable_mirror(bucket: str) -> S3ArtifactMirror:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = s3_client(nowhere, attempts=1, connect_timeout=1)
    return S3ArtifactMirror(bucket, client=client)


def promote_and_mirror(
    registry: Registry, make_version: Callable[..., ModelVersion], mirror: S3ArtifactMirror
) -> str:
    version = make_version()
    registry.promote(version.version, reason="test")
    mirror.sync(registry.store)
    bundle_id = registry.current_bundle_id()
    assert bundle_id is not None
    return bundle_id


def test_manifests_list_the_sha256_of_every_file(
    store: LocalModelStore,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    s3,  # type: ignore[no-untyped-def]
    bucket: str,
) -> None:
    version = make_version()
    mirror.sync(store)
    body = s3.get_object(Bucket=bucket, Key=f"versions/{version.version}/{COMPLETE}")["Body"]
    manifest = json.loads(body.read())
    assert set(manifest["sha256"]) == set(manifest["files"]) and len(manifest["files"]) >= 3
    assert all(len(digest) == 64 for digest in manifest["sha256"].values())


def test_a_manifest_written_before_checksums_still_downloads(
    store: LocalModelStore,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    s3,  # type: ignore[no-untyped-def]
    bucket: str,
    tmp_path: Path,
) -> None:
    make_version()
    bundle_id = store.bundle_ids()[0]
    mirror.sync(store)
    key = f"bundles/{bundle_id}/{COMPLETE}"
    old = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    del old["sha256"]
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(old).encode())
    copied = mirror.download_bundle(bundle_id, tmp_path / "copy")
    assert sorted(p.name for p in copied.iterdir()) == sorted(old["files"])


def test_the_replica_serves_what_the_database_names_once_s3_holds_it(
    registry: Registry,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    metadata: SqlMetadataStore,
    tmp_path: Path,
) -> None:
    first = promote_and_mirror(registry, make_version, mirror)
    holder = BundleHolder(source_over(mirror, metadata, tmp_path / "cache"), check_interval=0)
    assert holder.bundle().bundle_id == first

    second = make_version("persistence")
    registry.promote(second.version, reason="test")  # recorded, not mirrored yet
    assert metadata.serving_bundle_id() != first
    assert holder.bundle().bundle_id == first  # the old bundle serves until S3 has the new one
    mirror.sync(registry.store)
    assert holder.bundle().model_version == second.version
    assert (tmp_path / "cache" / "bundles" / holder.bundle().bundle_id / "bundle.json").is_file()


def test_a_rollback_is_followed_by_the_replica(
    registry: Registry,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    metadata: SqlMetadataStore,
    tmp_path: Path,
) -> None:
    first = promote_and_mirror(registry, make_version, mirror)
    promote_and_mirror(registry, make_version, mirror)
    holder = BundleHolder(source_over(mirror, metadata, tmp_path / "cache"), check_interval=0)
    assert holder.bundle().bundle_id != first
    registry.rollback(reason="test")
    assert holder.bundle().bundle_id == first


def test_without_a_serving_record_the_mirrors_current_is_followed(
    registry: Registry,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    tmp_path: Path,
) -> None:
    bundle_id = promote_and_mirror(registry, make_version, mirror)
    holder = BundleHolder(source_over(mirror, None, tmp_path / "cache"), check_interval=0)
    assert holder.bundle().bundle_id == bundle_id


def test_a_file_that_fails_its_sha256_is_never_served(
    registry: Registry,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    metadata: SqlMetadataStore,
    s3,  # type: ignore[no-untyped-def]
    bucket: str,
    tmp_path: Path,
) -> None:
    first = promote_and_mirror(registry, make_version, mirror)
    source = source_over(mirror, metadata, tmp_path / "cache")
    holder = BundleHolder(source, check_interval=0)
    assert holder.bundle().bundle_id == first
    second = promote_and_mirror(registry, make_version, mirror)
    key = f"bundles/{second}/bundle.json"
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"tampered": true}')
    assert holder.bundle().bundle_id == first
    assert not (tmp_path / "cache" / "bundles" / second).exists()
    assert [p.name for p in (tmp_path / "cache" / "bundles").iterdir()] == [first]


def test_with_s3_down_at_start_the_last_cached_bundle_serves_and_says_so(
    registry: Registry,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    metadata: SqlMetadataStore,
    bucket: str,
    tmp_path: Path,
) -> None:
    first = promote_and_mirror(registry, make_version, mirror)
    cache = tmp_path / "cache"
    assert BundleHolder(source_over(mirror, metadata, cache)).bundle().bundle_id == first
    promote_and_mirror(registry, make_version, mirror)  # newer, never fetched by this host

    restarted = source_over(unreachable_mirror(bucket), metadata, cache)
    assert BundleHolder(restarted).bundle().bundle_id == first
    assert restarted.state.status() == {"artifact_store": "unreachable", "serving_from": "cache"}


def test_with_no_cache_and_no_s3_nothing_serves(
    registry: Registry,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    metadata: SqlMetadataStore,
    bucket: str,
    tmp_path: Path,
) -> None:
    promote_and_mirror(registry, make_version, mirror)
    source = source_over(unreachable_mirror(bucket), metadata, tmp_path / "cache")
    with pytest.raises(Unavailable):
        BundleHolder(source).bundle()
    assert source.state.status()["artifact_store"] == "unreachable"


def test_a_pinned_version_is_fetched_on_demand(
    registry: Registry,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    metadata: SqlMetadataStore,
    tmp_path: Path,
) -> None:
    older = make_version()
    registry.promote(older.version, reason="test")
    promote_and_mirror(registry, make_version, mirror)
    holder = BundleHolder(source_over(mirror, metadata, tmp_path / "cache"), check_interval=0)
    assert holder.bundle().model_version != older.version
    pinned: Bundle = holder.bundle_for_version(older.version)
    assert pinned.model_version == older.version


def test_the_layer_copy_comes_from_s3_and_from_the_cache_when_s3_is_away(
    mirror: S3ArtifactMirror, bucket: str, tmp_path: Path
) -> None:
    layer = tmp_path / "tracts.geojson"
    layer.write_text('{"type": "FeatureCollection", "features": []}')
    mirror.sync_layer(layer)
    copy = RemoteLayer(mirror, tmp_path / "cache").path()
    assert copy.name == "tracts.geojson" and copy.read_text() == layer.read_text()

    offline = RemoteLayer(unreachable_mirror(bucket), tmp_path / "cache")
    assert offline.path() == copy
    assert offline.state.status()["serving_from"] == "cache"
    with pytest.raises(Unavailable):
        RemoteLayer(unreachable_mirror(bucket), tmp_path / "elsewhere").path()


def test_a_worker_on_an_empty_store_restores_the_mirror_and_numbers_past_every_host(
    registry: Registry,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    metadata: SqlMetadataStore,
    bucket: str,
    endpoint: str,
    tmp_path: Path,
    write_weights: Callable[[Path], None],
    aws_env: None,
) -> None:
    served = promote_and_mirror(registry, make_version, mirror)
    other_host = Registry(
        LocalModelStore(tmp_path / "host-b"),
        metadata,
        Settings(store=tmp_path / "host-b", s3_bucket=bucket, s3_endpoint_url=endpoint),
    )
    restored = other_host.restore_from_mirror()
    assert served in restored
    assert other_host.current_bundle_id() == served
    assert [v.version for v in other_host.list_versions()] == [
        v.version for v in registry.list_versions()
    ]
    registry.register("lstm", write_weights, {"mae": 1.0}, {"data_version": "d2"})  # not mirrored
    newest = other_host.register("lstm", write_weights, {"mae": 1.0}, {"data_version": "d2"})
    assert newest.version == "v0003-lstm"  # v0002 was taken on the first host


def test_restoring_never_moves_a_serving_store_back_to_an_older_mirrored_current(
    store: LocalModelStore,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    bucket: str,
    endpoint: str,
    tmp_path: Path,
    aws_env: None,
) -> None:
    older, newer = make_version(), make_version()
    older_bundle = store.latest_bundle_for(older.version)
    newer_bundle = store.latest_bundle_for(newer.version)
    assert older_bundle is not None and newer_bundle is not None
    store.set_current(older_bundle)
    mirror.sync(store)
    store.set_current(newer_bundle)  # served here; the mirror has not heard of it yet
    metadata = SqlMetadataStore(f"sqlite:///{tmp_path / 'no-record.db'}")
    settings = Settings(store=store.root, s3_bucket=bucket, s3_endpoint_url=endpoint)
    Registry(store, metadata, settings).restore_from_mirror()
    metadata.close()
    assert store.current_bundle_id() == newer_bundle
