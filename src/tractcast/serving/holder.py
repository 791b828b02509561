"""The serving bundle an API process answers from, following the store's `current` link.

A new bundle is loaded completely before it replaces the old one, and a bundle that fails to
load never replaces anything: requests keep being answered from the last good bundle.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from tractcast.errors import InvalidInput, NotFound, Unavailable
from tractcast.serving.bundle import Bundle, load_bundle
from tractcast.validation import shown

log = logging.getLogger(__name__)

CURRENT_LINK = "current"
BUNDLES_DIR = "bundles"
_SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class BundleHolder:
    """Thread-safe holder of the current bundle, plus a few bundles of pinned model versions."""

    def __init__(
        self,
        store_root: Path | str,
        check_interval: float = 0.5,
        *,
        loader: Callable[[Path], Bundle] = load_bundle,
        clock: Callable[[], float] = time.monotonic,
        cached_versions: int = 4,
    ) -> None:
        self.store_root = Path(store_root)
        self.check_interval = check_interval
        self._load = loader
        self._clock = clock
        self._cached_versions = cached_versions
        self._lock = threading.Lock()  # guards the fields below
        self._refresh_lock = threading.Lock()  # one loader at a time; readers never wait on it
        self._bundle: Bundle | None = None
        self._target: str | None = None  # link target of the bundle being served
        self._failed_target: str | None = None  # link target that failed to load
        self._next_check = float("-inf")
        self._by_version: OrderedDict[str, Bundle] = OrderedDict()  # bundle_id -> bundle

    def bundle(self) -> Bundle:
        """The bundle `current` points at (re-checked at most every check_interval seconds)."""
        if self._clock() >= self._next_check:
            self._refresh()
        bundle = self._bundle
        if bundle is None:
            raise Unavailable("no serving bundle is available yet")
        return bundle

    def loaded(self) -> Bundle | None:
        """The bundle being served, or None; never raises."""
        try:
            return self.bundle()
        except Unavailable:
            return None

    def bundle_for_version(self, version: str) -> Bundle:
        """The newest bundle made with model `version`; NotFound when it has none."""
        if not _SAFE_VERSION.fullmatch(version):
            raise InvalidInput(f"malformed model_version {shown(version)}")
        current = self.loaded()
        if current is not None and current.model_version == version:
            return current
        for directory in self._bundle_dirs_of(version):
            with self._lock:
                cached = self._by_version.get(directory.name)
                if cached is not None:
                    self._by_version.move_to_end(directory.name)
                    return cached
            try:
                bundle = self._load(directory)
            except Unavailable:
                log.warning("bundle %s failed to load; trying an older one", directory.name)
                continue
            with self._lock:
                self._by_version[directory.name] = bundle
                while len(self._by_version) > self._cached_versions:
                    self._by_version.popitem(last=False)
            return bundle
        raise NotFound(f"model version {version!r} has no serving bundle")

    def _refresh(self) -> None:
        # With a bundle in hand, never wait for another thread's load: serve the old one.
        blocking = self._bundle is None
        if not self._refresh_lock.acquire(blocking=blocking):
            return
        try:
            if self._clock() < self._next_check:
                return  # another thread refreshed while we waited
            target = self._read_link()
            if target is not None and target not in (self._target, self._failed_target):
                self._switch_to(target)
            self._next_check = self._clock() + self.check_interval
        finally:
            self._refresh_lock.release()

    def _switch_to(self, target: str) -> None:
        try:
            bundle = self._load(self.store_root / target)
        except Exception:
            # Keep serving the old bundle; retry only when the link moves again.
            log.exception("serving bundle %s failed to load; keeping %s", target, self._target)
            self._failed_target = target
            return
        with self._lock:
            self._bundle, self._target, self._failed_target = bundle, target, None
        log.info("now serving bundle %s", bundle.bundle_id)

    def _read_link(self) -> str | None:
        try:
            return os.readlink(self.store_root / CURRENT_LINK)
        except OSError:
            return None

    def _bundle_dirs_of(self, version: str) -> list[Path]:
        """Bundle directories of one model version, newest first."""
        root = self.store_root / BUNDLES_DIR
        dirs = [path for path in root.glob(f"{version}@*") if path.is_dir()]
        return sorted(dirs, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("-inf")
