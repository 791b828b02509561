"""kill -9 at every step of a write or a swap: `current` always names a complete bundle.

The step runs in a child process whose os/store functions pause at an injected point; the
test kills it there with SIGKILL and reads the store as the API and the registry would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.faults.conftest import Registry
from tests.faults.processes import wait_until

from tractcast.errors import NotFound
from tractcast.registry.integrity import verify_version_files
from tractcast.registry.registry import Registry as ModelRegistry
from tractcast.registry.store import TMP_PREFIX, LocalModelStore, RegistryReader
from tractcast.serving.bundle import load_bundle
from tractcast.serving.holder import BundleHolder

# The child: install a pause on `target` (module:function, before or after the call), then run
# one store operation. When the pause is reached it writes the marker file and sleeps.
CHILD = textwrap.dedent(
    """
    import importlib, os, sys, time
    from pathlib import Path

    root, marker, target, when, action, arg = sys.argv[1:7]
    module_name, qualified = target.split(":")
    owner = importlib.import_module(module_name)
    *outer, function_name = qualified.split(".")
    for name in outer:
        owner = getattr(owner, name)
    original = getattr(owner, function_name)

    def pause():
        Path(marker).write_text(target)
        time.sleep(600)

    def hooked(*args, **kwargs):
        if when == "before":
            pause()
        result = original(*args, **kwargs)
        if when == "after":
            pause()
        return result

    setattr(owner, function_name, hooked)

    from tractcast.registry.registry import Registry as ModelRegistry
    from tractcast.registry.metadata import SqlMetadataStore
    from tractcast.registry.store import LocalModelStore
    from tests.faults.conftest import tiny_bundle, write_weights

    store = LocalModelStore(Path(root))
    metadata = SqlMetadataStore(f"sqlite:///{root}/metadata.db")
    if action == "set_current":
        store.set_current(arg)
    elif action == "promote":
        ModelRegistry(store, metadata).promote(arg, reason="kill test", trigger="test")
    elif action == "register":
        ModelRegistry(store, metadata).register("lstm", write_weights, {"mae": 1.0},
                                                {"data_version": "d1"}, trigger="test")
    elif action == "add_bundle":
        store.add_bundle(tiny_bundle(arg, "d2"))
    Path(marker).write_text("finished")
    """
)


def kill_at(registry: Registry, target: str, when: str, action: str, arg: str = "") -> str:
    """Run `action` in a child, kill -9 it when it reaches `target`; returns where it stopped."""
    marker = registry.root.parent / f"marker-{os.urandom(4).hex()}"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(registry.root), str(marker), target, when, action, arg],
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    try:
        wait_until(lambda: marker.exists() or child.poll() is not None, 60, f"{action} hung")
        assert marker.exists(), f"{action} exited with {child.returncode} before {target}"
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return marker.read_text()


def assert_store_is_whole(root: Path) -> str | None:
    """Every visible version verifies, `current` loads; returns the bundle current names."""
    store = LocalModelStore(root)
    for version in store.list_versions():
        verify_version_files(version)
    bundles = root / "bundles"
    for path in bundles.iterdir():
        if not path.name.startswith(TMP_PREFIX):
            load_bundle(path)
    bundle_id = store.current_bundle_id()
    if bundle_id is not None:
        load_bundle(root / "bundles" / bundle_id)
    return bundle_id


# (function paused in, before/after the call): every step of LocalModelStore.set_current
SWAP_STEPS = [
    ("tractcast.registry.store:LocalModelStore._load", "after"),  # checked, no link yet
    ("os:symlink", "after"),  # temp link made, not swapped in
    ("os:replace", "before"),
    ("os:replace", "after"),  # swapped, directory not synced
    ("tractcast.registry.store:_fsync_dir", "after"),
]


@pytest.mark.parametrize(("target", "when"), SWAP_STEPS)
def test_kill_during_set_current_leaves_current_on_the_old_or_the_new_bundle(
    registry: Registry, target: str, when: str
) -> None:
    old, new = registry.bundle_of(registry.champion), registry.bundle_of(registry.candidate)
    assert kill_at(registry, target, when, "set_current", new) == target
    assert assert_store_is_whole(registry.root) in {old, new}
    holder = BundleHolder(RegistryReader(registry.root))
    assert holder.bundle().bundle_id in {old, new}


def test_kill_after_the_swap_before_the_event_serves_the_new_version_and_it_can_be_promoted(
    registry: Registry,
) -> None:
    # `current` is the truth; the metadata's story lags by one event until the next promotion
    target = "tractcast.registry.store:_fsync_dir"
    assert kill_at(registry, target, "after", "promote", registry.candidate) == target
    assert assert_store_is_whole(registry.root) == registry.bundle_of(registry.candidate)
    assert (
        ModelRegistry(registry.store, registry.metadata).current_model()["version"]
        == registry.candidate
    )
    event = ModelRegistry(registry.store, registry.metadata).promote(
        registry.candidate, reason="again", trigger="test"
    )
    assert event.from_version == registry.candidate


WRITE_STEPS = [
    ("tractcast.registry.integrity:file_sha256", "before"),  # model.h5 written, no checksums yet
    ("tractcast.registry.store:_write_json", "after"),  # metrics.json written
    ("tractcast.registry.store:_seal", "after"),  # sealed, not renamed
    ("os:rename", "after"),  # renamed, directory not synced
]


@pytest.mark.parametrize(("target", "when"), WRITE_STEPS)
def test_kill_while_registering_a_version_never_shows_half_of_it(
    registry: Registry, target: str, when: str
) -> None:
    before = [v.version for v in registry.store.list_versions()]
    assert kill_at(registry, target, when, "register") == target
    assert_store_is_whole(registry.root)
    after = [v.version for v in registry.store.list_versions()]
    assert after == before or (after[:-1] == before and when == "after" and target == "os:rename")


@pytest.mark.parametrize(
    ("target", "when"),
    [("tractcast.serving.bundle:_write_synced", "after"), ("os:rename", "before")],
)
def test_kill_while_adding_a_bundle_never_shows_half_of_it(
    registry: Registry, target: str, when: str
) -> None:
    assert kill_at(registry, target, when, "add_bundle", registry.candidate) == target
    assert assert_store_is_whole(registry.root) == registry.bundle_of(registry.champion)
    assert not (registry.root / "bundles" / f"{registry.candidate}@d2").exists()
    with pytest.raises(NotFound):
        registry.store.bundle(f"{registry.candidate}@d2")


def test_what_killed_writers_leave_behind_is_swept_and_the_store_stays_whole(
    registry: Registry,
) -> None:
    kill_at(registry, "os:symlink", "after", "set_current", registry.bundle_of(registry.candidate))
    kill_at(registry, "tractcast.registry.store:_seal", "after", "register")
    kill_at(registry, "tractcast.serving.bundle:_write_synced", "after", "add_bundle", "v0001-lstm")
    left = sorted(
        str(path.relative_to(registry.root))
        for path in registry.root.rglob(f"{TMP_PREFIX}*")
        if not path.parent.name.startswith(TMP_PREFIX)  # the temp entries, not their contents
    )
    assert len(left) == 3
    assert sorted(LocalModelStore(registry.root).sweep_abandoned(older_than=0)) == left
    assert list(registry.root.rglob(f"{TMP_PREFIX}*")) == []
    assert assert_store_is_whole(registry.root) == registry.bundle_of(registry.champion)
