"""An exclusive lock between processes: flock on a file."""

from __future__ import annotations

import fcntl
from pathlib import Path
from types import TracebackType
from typing import IO


class FileLock:
    """An exclusive flock on `path` (the file is created if missing; its directory must exist).

    `with FileLock(path):` waits for the lock; `acquire(blocking=False)` answers False at once
    when another process holds it. The operating system drops it when its holder dies.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (or keep it when held); False when `blocking` is off and it is taken."""
        if self._handle is not None:
            return True
        handle = open(self.path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        return True

    def release(self) -> None:
        """Give the lock up (only if held)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                fcntl.flock(handle, fcntl.LOCK_UN)  # also for copies of the descriptor
            finally:
                handle.close()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
