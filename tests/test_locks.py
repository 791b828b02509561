"""FileLock: one holder at a time, between processes and between open files of one process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tractcast.locks import FileLock


def test_a_held_lock_is_refused_to_a_second_holder_until_released(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    with FileLock(path):
        assert not FileLock(path).acquire(blocking=False)
    other = FileLock(path)
    assert other.acquire(blocking=False)
    other.release()


def test_another_process_cannot_take_a_held_lock(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    probe = (
        "import sys; from tractcast.locks import FileLock; "
        "sys.exit(0 if FileLock(sys.argv[1]).acquire(blocking=False) else 3)"
    )
    with FileLock(path):
        held = subprocess.run([sys.executable, "-c", probe, str(path)], timeout=60)
    free = subprocess.run([sys.executable, "-c", probe, str(path)], timeout=60)
    assert held.returncode == 3
    assert free.returncode == 0


def test_acquire_keeps_a_lock_already_held_and_release_is_idempotent(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / ".lock")
    assert lock.acquire(blocking=False)
    assert lock.acquire(blocking=False)
    lock.release()
    lock.release()
    again = FileLock(tmp_path / ".lock")
    assert again.acquire(blocking=False)  # released for real: another open file takes it
    again.release()
