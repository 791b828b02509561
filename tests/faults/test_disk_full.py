"""A write that fails for lack of space (ENOSPC): nothing half-written becomes visible."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.faults.conftest import Registry, tiny_bundle, write_weights

from tractcast.registry.registry import Registry as ModelRegistry
from tractcast.registry.store import TMP_PREFIX
from tractcast.serving import bundle as bundle_module


def disk_full(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def leftovers(root: Path) -> list[Path]:
    return list(root.rglob(f"{TMP_PREFIX}*"))


def half_written_weights(directory: Path) -> None:
    """A model save that runs out of space half way through model.h5."""
    with open(directory / "model.h5", "wb") as handle:
        handle.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 4096)
        disk_full()


def register(registry: Registry, write: Callable[[Path], None] = write_weights) -> None:
    ModelRegistry(registry.store, registry.metadata).register(
        "lstm", write, {"mae": 1.0}, {"data_version": "d1"}
    )


def test_a_model_save_that_runs_out_of_space_registers_nothing(registry: Registry) -> None:
    before = registry.store.list_versions()
    events = registry.metadata.list_events()
    with pytest.raises(OSError) as raised:
        register(registry, half_written_weights)
    assert raised.value.errno == errno.ENOSPC
    assert registry.store.list_versions() == before
    assert registry.metadata.list_events() == events  # no "registered" for a version not there
    assert leftovers(registry.root) == []


@pytest.mark.parametrize("step", ["fsync", "checksums"])
def test_running_out_of_space_while_sealing_a_version_registers_nothing(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    before = registry.store.list_versions()
    if step == "fsync":  # where delayed allocation reports a full disk
        monkeypatch.setattr(os, "fsync", disk_full)
    else:
        monkeypatch.setattr("tractcast.registry.integrity.file_sha256", disk_full)
    with pytest.raises(OSError):
        register(registry)
    monkeypatch.undo()
    assert registry.store.list_versions() == before
    assert leftovers(registry.root) == []
    register(registry)  # with space again, the next version registers whole
    assert len(registry.store.list_versions()) == len(before) + 1


def test_a_bundle_that_runs_out_of_space_is_not_stored(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = bundle_module._write_synced

    def half_then_full(path: Path, data: bytes) -> None:
        original(path, data[: len(data) // 2])
        disk_full()

    monkeypatch.setattr(bundle_module, "_write_synced", half_then_full)
    with pytest.raises(OSError):
        registry.store.add_bundle(tiny_bundle(registry.candidate, "d2"))
    assert registry.store.latest_bundle_for(registry.candidate) == f"{registry.candidate}@d1"
    assert not (registry.root / "bundles" / f"{registry.candidate}@d2").exists()
    assert leftovers(registry.root) == []


def test_a_promotion_that_cannot_write_its_link_leaves_the_champion_serving(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = registry.store.current_bundle_id()
    monkeypatch.setattr(os, "symlink", disk_full)
    with pytest.raises(OSError):
        ModelRegistry(registry.store, registry.metadata).promote(registry.candidate, reason="try")
    assert registry.store.current_bundle_id() == serving
    assert [e.kind for e in registry.metadata.list_events(limit=1)] == ["registered"]
    assert leftovers(registry.root) == []


def test_a_swap_that_fails_after_the_temp_link_removes_it(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = registry.store.current_bundle_id()
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError):
        registry.store.set_current(registry.bundle_of(registry.candidate))
    assert registry.store.current_bundle_id() == serving
    assert leftovers(registry.root) == []
