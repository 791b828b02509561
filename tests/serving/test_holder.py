"""The bundle holder follows `current`, loading a new bundle fully before switching."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tractcast.errors import InvalidInput, NotFound, Unavailable
from tractcast.registry.store import RegistryReader
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, load_bundle, write_bundle
from tractcast.serving.holder import BundleHolder


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_bundle(model_version: str, data_version: str) -> Bundle:
    days = tuple(ForecastDay(f"2024-03-{d + 2:02d}", 5.0, 4.0, 6.0) for d in range(14))
    return Bundle(
        bundle_id=f"{model_version}@{data_version}",
        model_version=model_version,
        data_version=data_version,
        as_of="2024-03-01",
        created_at="2024-03-02T03:00:00+00:00",
        horizon=14,
        tracts={"015": TractForecast("015", "2024-03-01", 100, 5, days)},
    )


def add_bundle(
    store: Path, model_version: str, data_version: str, bundle_format: int = 2
) -> str:
    bundle = make_bundle(model_version, data_version)
    write_bundle(bundle, store / "bundles" / bundle.bundle_id, bundle_format=bundle_format)
    return bundle.bundle_id


def point_current(store: Path, bundle_id: str) -> None:
    tmp = store / "current.tmp"
    tmp.symlink_to(Path("bundles") / bundle_id)
    os.replace(tmp, store / "current")


def corrupt(store: Path, bundle_id: str) -> None:
    (store / "bundles" / bundle_id / "bundle.json").write_text('{"truncated": ')


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "bundles").mkdir()
    return tmp_path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_nothing_ever_loaded_is_unavailable(store: Path) -> None:
    holder = BundleHolder(RegistryReader(store))

    with pytest.raises(Unavailable):
        holder.bundle()
    assert holder.loaded() is None


def test_serves_the_bundle_current_points_at(store: Path) -> None:
    point_current(store, add_bundle(store, "v0001-lstm", "d1"))

    bundle = BundleHolder(RegistryReader(store)).bundle()

    assert (bundle.model_version, bundle.data_version) == ("v0001-lstm", "d1")


def test_switches_to_a_new_bundle_within_the_check_interval(store: Path, clock: FakeClock) -> None:
    point_current(store, add_bundle(store, "v0001-lstm", "d1"))
    holder = BundleHolder(RegistryReader(store), check_interval=0.5, clock=clock)
    assert holder.bundle().data_version == "d1"

    point_current(store, add_bundle(store, "v0001-lstm", "d2"))
    clock.now += 0.1
    assert holder.bundle().data_version == "d1"  # not re-checked yet
    clock.now += 0.5
    assert holder.bundle().data_version == "d2"


def test_bundles_written_before_the_array_format_serve_and_swap_both_ways(
    store: Path, clock: FakeClock
) -> None:
    old = add_bundle(store, "v0001-lstm", "d1", bundle_format=1)
    new = add_bundle(store, "v0002-lstm", "d1")
    point_current(store, old)
    holder = BundleHolder(RegistryReader(store), check_interval=0.5, clock=clock)
    assert holder.bundle() == make_bundle("v0001-lstm", "d1")

    point_current(store, new)
    clock.now += 1
    assert holder.bundle() == make_bundle("v0002-lstm", "d1")
    point_current(store, old)  # a rollback to a version pinned before the format changed
    clock.now += 1
    assert holder.bundle() == make_bundle("v0001-lstm", "d1")
    assert holder.bundle_for_version("v0002-lstm").bundle_id == new


def test_switches_in_real_time(store: Path) -> None:
    point_current(store, add_bundle(store, "v0001-lstm", "d1"))
    holder = BundleHolder(RegistryReader(store), check_interval=0.05)
    assert holder.bundle().data_version == "d1"

    point_current(store, add_bundle(store, "v0002-lstm", "d1"))
    time.sleep(0.1)

    assert holder.bundle().model_version == "v0002-lstm"


def test_keeps_the_old_bundle_when_the_new_one_is_corrupt(store: Path, clock: FakeClock) -> None:
    point_current(store, add_bundle(store, "v0001-lstm", "d1"))
    holder = BundleHolder(RegistryReader(store), check_interval=0.5, clock=clock)
    holder.bundle()
    broken = add_bundle(store, "v0001-lstm", "d2")
    corrupt(store, broken)

    point_current(store, broken)
    clock.now += 1
    assert holder.bundle().data_version == "d1"

    point_current(store, add_bundle(store, "v0001-lstm", "d3"))
    clock.now += 1
    assert holder.bundle().data_version == "d3"


def test_a_corrupt_first_bundle_is_unavailable(store: Path) -> None:
    bundle_id = add_bundle(store, "v0001-lstm", "d1")
    corrupt(store, bundle_id)
    point_current(store, bundle_id)

    with pytest.raises(Unavailable):
        BundleHolder(RegistryReader(store)).bundle()


def test_readers_keep_the_old_bundle_while_the_new_one_loads(store: Path, clock: FakeClock) -> None:
    point_current(store, add_bundle(store, "v0001-lstm", "d1"))
    release = threading.Event()
    loading = threading.Event()

    def slow_loader(directory: Path) -> Bundle:
        if directory.name.endswith("d2"):
            loading.set()
            release.wait(5)
        return load_bundle(directory)

    holder = BundleHolder(
        RegistryReader(store), check_interval=0.5, loader=slow_loader, clock=clock
    )
    holder.bundle()
    point_current(store, add_bundle(store, "v0001-lstm", "d2"))
    clock.now += 1
    loader_thread = threading.Thread(target=holder.bundle)
    loader_thread.start()
    assert loading.wait(5)

    assert holder.bundle().data_version == "d1"  # does not wait for the load

    release.set()
    loader_thread.join(5)
    assert holder.bundle().data_version == "d2"


def test_bundle_for_version_returns_the_newest_bundle_of_that_version(store: Path) -> None:
    point_current(store, add_bundle(store, "v0002-lstm", "d3"))
    old = add_bundle(store, "v0001-lstm", "d1")
    new = add_bundle(store, "v0001-lstm", "d2")
    os.utime(store / "bundles" / old, (1_000_000, 1_000_000))
    os.utime(store / "bundles" / new, (2_000_000, 2_000_000))
    holder = BundleHolder(RegistryReader(store))

    pinned = holder.bundle_for_version("v0001-lstm")

    assert pinned.bundle_id == "v0001-lstm@d2"
    assert holder.bundle_for_version("v0001-lstm") is pinned  # cached
    assert holder.bundle().model_version == "v0002-lstm"


def test_bundle_for_version_without_bundles_is_not_found(store: Path) -> None:
    with pytest.raises(NotFound, match="v0009-lstm"):
        BundleHolder(RegistryReader(store)).bundle_for_version("v0009-lstm")


def test_bundle_for_a_malformed_version_is_invalid_input(store: Path) -> None:
    with pytest.raises(InvalidInput):
        BundleHolder(RegistryReader(store)).bundle_for_version("../../etc")


@pytest.mark.parametrize("version", ["", "../v0001-lstm", "v0001-lstm\n", "v0001/lstm", "*"])
def test_a_malformed_pinned_version_is_invalid_input(store: Path, version: str) -> None:
    with pytest.raises(InvalidInput, match="malformed model_version"):
        BundleHolder(RegistryReader(store)).bundle_for_version(version)
