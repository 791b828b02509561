"""The registry: the only code that knows where versions and bundles lie, and their story.

`Registry` (store and metadata database together) and `RegistryReader` (a read-only view of
the store) are imported lazily, so a reader (the API) never loads SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tractcast.registry.registry import Registry
    from tractcast.registry.store import RegistryReader

__all__ = ["Registry", "RegistryReader"]


def __getattr__(name: str) -> Any:
    if name == "Registry":
        from tractcast.registry.registry import Registry

        return Registry
    if name == "RegistryReader":
        from tractcast.registry.store import RegistryReader

        return RegistryReader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
