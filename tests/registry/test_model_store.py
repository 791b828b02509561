"""LocalModelStore: numbered immutable versions, bundles, and the atomic `current` link."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tractcast.errors import InvalidInput, NotFound, Unavailable
from tractcast.registry.store import LocalModelStore, ModelVersion


def test_versions_are_numbered_across_families(make_version: Callable[..., ModelVersion]) -> None:
    ids = [make_version(f).version for f in ("lstm", "persistence", "lstm")]
    assert ids == ["v0001-lstm", "v0002-persistence", "v0003-lstm"]


def test_version_holds_artifacts_metrics_and_manifest(
    store: LocalModelStore, write_weights: Callable[[Path], None]
) -> None:
    version = store.create_version(
        "lstm",
        write_weights,
        metrics={"mae": 1.5},
        manifest={"hyperparameters": {"units": 32}, "git_commit": "abc", "data_version": "d9"},
    )
    assert version.path is not None and (version.path / "model.h5").is_file()
    assert json.loads((version.path / "metrics.json").read_text()) == {"mae": 1.5}
    manifest = version.manifest
    assert manifest["version"] == "v0001-lstm" and manifest["family"] == "lstm"
    assert manifest["hyperparameters"] == {"units": 32} and manifest["git_commit"] == "abc"
    assert version.data_version == "d9" and manifest["created_at"].endswith("+00:00")
    assert store.get_version("v0001-lstm") == version


def test_version_files_are_read_only(make_version: Callable[..., ModelVersion]) -> None:
    version = make_version()
    assert version.path is not None
    for name in ("model.h5", "metrics.json", "manifest.json"):
        assert not os.access(version.path / name, os.W_OK) or os.geteuid() == 0
        assert (version.path / name).stat().st_mode & 0o222 == 0


def test_a_failed_write_leaves_no_version(store: LocalModelStore) -> None:
    def broken(directory: Path) -> None:
        (directory / "half.h5").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.create_version("lstm", broken, metrics={}, manifest={})
    assert store.list_versions() == []
    assert list((store.root / "versions").iterdir()) == []


def test_listing_is_sorted_numerically(
    store: LocalModelStore, make_version: Callable[..., ModelVersion]
) -> None:
    make_version()
    _copy_version(store, "v0001-lstm", "v9999-lstm")
    _copy_version(store, "v0001-lstm", "v10000-lstm")
    # by text "v10000" sorts before "v9999"; by number it comes last
    assert [v.version for v in store.list_versions()] == ["v0001-lstm", "v9999-lstm", "v10000-lstm"]
    assert make_version().version == "v10001-lstm"


@pytest.mark.parametrize("bad", ["../etc", "v1-lstm", "v0001-LSTM", "v0001-lstm/..", "", "current"])
def test_malformed_version_ids_are_rejected(store: LocalModelStore, bad: str) -> None:
    with pytest.raises(InvalidInput):
        store.get_version(bad)
    assert not store.root.exists()  # rejected before touching the filesystem


def test_unknown_version_is_not_found(store: LocalModelStore) -> None:
    with pytest.raises(NotFound):
        store.get_version("v0042-lstm")


def test_malformed_family_is_rejected(
    store: LocalModelStore, write_weights: Callable[[Path], None]
) -> None:
    with pytest.raises(InvalidInput):
        store.create_version("../x", write_weights, metrics={}, manifest={})


def test_leftover_tmp_dirs_are_invisible(
    store: LocalModelStore, make_version: Callable[..., ModelVersion]
) -> None:
    make_version()
    (store.root / "versions" / ".tmp-deadbeef").mkdir()
    (store.root / "versions" / ".tmp-deadbeef" / "manifest.json").write_text("{}")
    (store.root / "bundles" / ".tmp-cafe").mkdir()
    assert [v.version for v in store.list_versions()] == ["v0001-lstm"]
    assert make_version().version == "v0002-lstm"
    assert store.latest_bundle_for("v0002-lstm") == "v0002-lstm@d1"


def test_add_bundle_is_idempotent(
    store: LocalModelStore, make_version: Callable[..., ModelVersion], tiny_bundle: Callable
) -> None:
    version = make_version(bundle=False).version
    assert store.add_bundle(tiny_bundle(version)) == f"{version}@d1"
    assert store.add_bundle(tiny_bundle(version)) == f"{version}@d1"
    assert [p.name for p in (store.root / "bundles").iterdir()] == [f"{version}@d1"]


def test_bundle_for_unknown_version_is_refused(
    store: LocalModelStore, tiny_bundle: Callable
) -> None:
    with pytest.raises(NotFound):
        store.add_bundle(tiny_bundle("v0009-lstm"))


def test_latest_bundle_is_the_newest_written(
    store: LocalModelStore, make_version: Callable[..., ModelVersion], tiny_bundle: Callable
) -> None:
    version = make_version(data_version="d1").version
    assert store.latest_bundle_for(version) == f"{version}@d1"
    store.add_bundle(tiny_bundle(version, "d0"))
    os.utime(store.root / "bundles" / f"{version}@d1", ns=(1, 1))
    assert store.latest_bundle_for(version) == f"{version}@d0"
    assert store.latest_bundle_for("v0099-lstm") is None


def test_set_current_moves_a_relative_link(
    store: LocalModelStore, make_version: Callable[..., ModelVersion]
) -> None:
    assert store.current_bundle_id() is None
    first, second = make_version().version, make_version().version
    store.set_current(f"{first}@d1")
    store.set_current(f"{second}@d1")
    assert store.current_bundle_id() == f"{second}@d1"
    assert os.readlink(store.root / "current") == f"bundles/{second}@d1"
    assert store.bundle(f"{second}@d1").model_version == second
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]


def test_set_current_refuses_a_corrupted_bundle_and_current_stays(
    store: LocalModelStore, make_version: Callable[..., ModelVersion]
) -> None:
    good, bad = make_version().version, make_version().version
    store.set_current(f"{good}@d1")
    path = store.root / "bundles" / f"{bad}@d1" / "bundle.json"
    data = bytearray(path.read_bytes())
    data[10] ^= 0x20
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(Unavailable, match="corrupt"):
        store.set_current(f"{bad}@d1")
    assert store.current_bundle_id() == f"{good}@d1"


def test_set_current_to_an_unknown_bundle_is_not_found(store: LocalModelStore) -> None:
    with pytest.raises(NotFound):
        store.set_current("v0001-lstm@d1")
    with pytest.raises(InvalidInput):
        store.set_current("../../etc@x")


def _no_artifacts(directory: Path) -> None:
    pass


def _copy_version(store: LocalModelStore, source: str, target: str) -> None:
    shutil.copytree(store.root / "versions" / source, store.root / "versions" / target)


def _create_many(root: str, count: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = LocalModelStore(Path(root))
    ids = [
        store.create_version("lstm", _no_artifacts, metrics={}, manifest={}).version
        for _ in range(count)
    ]
    queue.put(ids)


def test_concurrent_writers_get_distinct_ids(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_create_many, args=(str(tmp_path / "store"), 8, queue))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    ids = [version for ids in results for version in ids]
    assert len(set(ids)) == 16
    assert sorted(ids) == [f"v{n:04d}-lstm" for n in range(1, 17)]
    assert len(LocalModelStore(tmp_path / "store").list_versions()) == 16
