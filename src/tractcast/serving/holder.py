"""The serving bundle an API process answers from, following the store's `current` link.

A new bundle is loaded completely before it replaces the old one, and a bundle that fails to
load never replaces anything: requests keep being answered from the last good bundle. Where
bundles lie is the registry's business: the holder reads them through a BundleSource
(tractcast.registry.RegistryReader is one).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tractcast.errors import InvalidInput, NotFound, TractcastError, Unavailable
from tractcast.serving.bundle import Bundle, load_bundle
from tractcast.validation import PINNED_VERSION_PATTERN, shown

log = logging.getLogger(__name__)

_PINNED_VERSION = re.compile(PINNED_VERSION_PATTERN)


class BundleSource(Protocol):
    """Where serving bundles are found: the registry's read-only view of the store."""

    def current_bundle_id(self) -> str | None:
        """The bundle `current` points at, or None."""
        ...

    def bundle_ids(self, version: str | None = None) -> list[str]:
        """The stored bundles (of one version, if given), newest first."""
        ...

    def bundle_path(self, bundle_id: str) -> Path:
        """Where a bundle's files lie, for a loader."""
        ...


class BundleHolder:
    """Thread-safe holder of the current bundle, plus a few bundles of pinned model versions."""

    def __init__(
        self,
        source: BundleSource,
        check_interval: float = 0.5,
        *,
        loader: Callable[[Path], Bundle] = load_bundle,
        clock: Callable[[], float] = time.monotonic,
        cached_versions: int = 4,
    ) -> None:
        self.source = source
        self.check_interval = check_interval
        self._load = loader
        self._clock = clock
        self._cached_versions = cached_versions
        self._lock = threading.Lock()  # guards the fields below
        self._refresh_lock = threading.Lock()  # one loader at a time; readers never wait on it
        self._bundle: Bundle | None = None
        self._target: str | None = None  # id of the bundle being served
        self._failed_target: str | None = None  # bundle id that failed to load
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
        if not _PINNED_VERSION.fullmatch(version):
            raise InvalidInput(f"malformed model_version {shown(version)}")
        served = self.loaded()
        if served is not None and served.model_version == version:
            return served
        for bundle_id in self._bundle_ids_of(version):
            with self._lock:
                cached = self._by_version.get(bundle_id)
                if cached is not None:
                    self._by_version.move_to_end(bundle_id)
                    return cached
            try:
                bundle = self._load(self.source.bundle_path(bundle_id))
            except Unavailable:
                log.warning("bundle %s failed to load; trying an older one", bundle_id)
                continue
            with self._lock:
                self._by_version[bundle_id] = bundle
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
            bundle = self._load(self.source.bundle_path(target))
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
            return self.source.current_bundle_id()
        except (OSError, TractcastError):  # a link being replaced, or not a bundle's
            return None

    def _bundle_ids_of(self, version: str) -> list[str]:
        """Bundle ids of one model version, newest first."""
        try:
            return self.source.bundle_ids(version)
        except InvalidInput:  # safe to read, but not shaped like a version id: none stored
            return []
