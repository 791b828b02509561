"""S3ArtifactMirror against moto's standalone S3 server, over HTTP on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.faults.processes import free_port

from tractcast.errors import Unavailable
from tractcast.registry.mirror import COMPLETE, S3ArtifactMirror, mirror_store
from tractcast.registry.store import LocalModelStore, ModelVersion
from tractcast.settings import Settings


def keys(s3, bucket: str) -> set[str]:  # type: ignore[no-untyped-def]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def serve(store: LocalModelStore, version: ModelVersion) -> str:
    bundle_id = store.latest_bundle_for(version.version)
    assert bundle_id is not None
    store.set_current(bundle_id)
    return bundle_id


def test_sync_copies_every_file_of_versions_and_bundles_and_names_current(
    store: LocalModelStore,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    s3,  # type: ignore[no-untyped-def]
    bucket: str,
    tmp_path: Path,
) -> None:
    first, second = make_version(), make_version("persistence")
    bundle_id = serve(store, second)

    report = mirror.sync(store)

    assert report.versions == [first.version, second.version]
    assert len(report.bundles) == 2 and report.current == bundle_id
    assert mirror.current_bundle_id() == bundle_id
    assert mirror.mirrored_versions() == [first.version, second.version]
    stored = keys(s3, bucket)
    for version in (first, second):
        assert version.path is not None
        for path in version.path.iterdir():
            assert f"versions/{version.version}/{path.name}" in stored
    assert f"bundles/{bundle_id}/bundle.json" in stored
    copy = mirror.download_version(first.version, tmp_path / "restored")
    assert first.path is not None
    for path in first.path.iterdir():
        assert (copy / path.name).read_bytes() == path.read_bytes()


def test_a_second_sync_uploads_only_what_is_new(
    store: LocalModelStore, make_version: Callable[..., ModelVersion], mirror: S3ArtifactMirror
) -> None:
    serve(store, make_version())
    mirror.sync(store)
    again = mirror.sync(store)
    assert (again.versions, again.bundles, again.current) == ([], [], None)

    newer = make_version("persistence")
    bundle_id = serve(store, newer)
    later = mirror.sync(store)
    assert later.versions == [newer.version] and later.bundles == [bundle_id]
    assert later.current == bundle_id


def test_an_upload_cut_short_is_not_a_mirrored_version_and_the_next_sync_completes_it(
    store: LocalModelStore,
    make_version: Callable[..., ModelVersion],
    mirror: S3ArtifactMirror,
    s3,  # type: ignore[no-untyped-def]
    bucket: str,
) -> None:
    version = make_version()
    # what a process killed half way through an upload leaves: one file, no marker
    s3.put_object(Bucket=bucket, Key=f"versions/{version.version}/model.h5", Body=b"trunc")
    assert mirror.mirrored_versions() == []

    assert mirror.sync(store).versions == [version.version]
    assert mirror.mirrored_versions() == [version.version]
    assert f"versions/{version.version}/{COMPLETE}" in keys(s3, bucket)
    body = s3.get_object(Bucket=bucket, Key=f"versions/{version.version}/model.h5")["Body"]
    assert body.read() == b"not really hdf5"


def test_current_never_names_a_bundle_the_mirror_does_not_hold(
    mirror: S3ArtifactMirror,
) -> None:
    with pytest.raises(Unavailable):
        mirror.set_current("v0001-lstm@d1")
    assert mirror.current_bundle_id() is None


def test_the_retrain_hook_mirrors_with_the_configured_bucket_and_endpoint(
    store: LocalModelStore,
    make_version: Callable[..., ModelVersion],
    bucket: str,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bundle_id = serve(store, make_version())
    settings = Settings(store=store.root, s3_bucket=bucket, s3_endpoint_url=endpoint)
    report = mirror_store(settings, store)
    assert report is not None and report.current == bundle_id


def test_an_unreachable_s3_is_logged_and_does_not_raise(
    store: LocalModelStore,
    make_version: Callable[..., ModelVersion],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    make_version()
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = Settings(store=store.root, s3_bucket="tractcast", s3_endpoint_url=nowhere)
    assert mirror_store(settings, store) is None
    assert "S3 mirror tractcast not updated" in caplog.text


def test_without_a_bucket_nothing_is_mirrored(store: LocalModelStore) -> None:
    assert mirror_store(Settings(store=store.root), store) is None
