"""Checksums of a version's model files, so a corrupted `.h5` is refused before it serves.

A version's files are written once, then sealed read-only; a later bit flip, a truncated copy or
a bad restore from the S3 mirror shows as a checksum mismatch. Versions registered before
checksums existed have no checksum file and are taken as they are.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from tractcast.errors import Unavailable
from tractcast.registry.store import ModelVersion

CHECKSUM_FILE = "checksums.sha256"


def with_checksums(write_artifacts: Callable[[Path], None]) -> Callable[[Path], None]:
    """`write_artifacts`, then a checksum line (sha256sum format) for every file it wrote."""

    def write(directory: Path) -> None:
        write_artifacts(directory)
        lines = [f"{file_sha256(path)}  {name}" for name, path in _files(directory)]
        with open(directory / CHECKSUM_FILE, "w") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())

    return write


def verify_version_files(version: ModelVersion) -> None:
    """Raise Unavailable when a file listed in the version's checksums is missing or changed."""
    if version.path is None:
        return
    listing = version.path / CHECKSUM_FILE
    try:
        text = listing.read_text()
    except FileNotFoundError:
        return  # registered before checksums existed
    except OSError as exc:
        raise Unavailable(f"{version.version} is corrupt: {exc.strerror or 'unreadable'}") from exc
    for line in text.splitlines():
        expected, _, name = line.partition("  ")
        path = version.path / name
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise Unavailable(f"{version.version} is corrupt: {name} cannot be read") from exc
        if actual != expected:
            raise Unavailable(f"{version.version} is corrupt: {name} fails its checksum")


def _files(directory: Path) -> list[tuple[str, Path]]:
    found = [
        (str(path.relative_to(directory)), path)
        for path in sorted(Path(directory).rglob("*"))
        if path.is_file() and path.name != CHECKSUM_FILE
    ]
    return found


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
