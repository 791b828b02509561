"""The tract layers an API process serves: per layer, its bundle holder and its client of geo.

A point is answered from the finest layer holding it: layers are kept finest first (the order
of the layers file), and the first whose tract contains the point answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tractcast.geo.client import GeoClient
from tractcast.geo.index import Tract
from tractcast.serving.holder import BundleHolder
from tractcast.tract_layers import known_layer


@dataclass(frozen=True)
class ServedLayer:
    name: str
    holder: BundleHolder
    geo: GeoClient

    def describe(self) -> dict[str, Any]:
        """The layer as /v1/layers lists it: its tracts, champion, bundle and data release."""
        bundle = self.holder.loaded()
        if self.geo.replica.copy is None:
            self.geo.load_replica()
        copy = self.geo.replica.copy
        return {
            "name": self.name,
            "tracts": None if copy is None else len(copy.tracts),
            "tracts_with_forecast": None if bundle is None else len(bundle.tracts),
            "model_version": None if bundle is None else bundle.model_version,
            "bundle": None if bundle is None else bundle.bundle_id,
            "data_version": None if bundle is None else bundle.data_version,
            "as_of": None if bundle is None else bundle.as_of,
        }


class ServedLayers:
    """The served layers, finest first. `named`: answers say which layer they come from (a
    deployment with a layers file); a deployment of one unnamed layer answers as it always has."""

    def __init__(self, layers: Sequence[ServedLayer], *, named: bool) -> None:
        if not layers:
            raise ValueError("at least one layer is served")
        self._layers = {layer.name: layer for layer in layers}
        self.named = named

    def __iter__(self) -> Iterator[ServedLayer]:
        return iter(self._layers.values())

    def __len__(self) -> int:
        return len(self._layers)

    @property
    def first(self) -> ServedLayer:
        return next(iter(self._layers.values()))

    def get(self, name: str | None) -> ServedLayer:
        """The named layer (InvalidInput when malformed, NotFound when unknown), or the first."""
        if name is None:
            return self.first
        return self._layers[known_layer(self._layers, name)]

    def shown(self, layer: ServedLayer) -> str | None:
        """The layer's name as answers show it: None for the one unnamed layer."""
        return layer.name if self.named else None

    def holding(self, lat: float, lon: float) -> tuple[ServedLayer, Tract | None]:
        """The finest layer whose tract contains the point, and that tract; (first, None) when
        no layer holds it."""
        for layer in self:
            tract = layer.geo.tract_for_point(lat, lon)
            if tract is not None:
                return layer, tract
        return self.first, None

    def holding_points(
        self, points: Sequence[tuple[float, float]]
    ) -> list[tuple[ServedLayer, Tract | None]]:
        """holding() for many points, one batch per layer for the points still unanswered."""
        found: list[tuple[ServedLayer, Tract | None]] = [(self.first, None)] * len(points)
        left = list(range(len(points)))
        for layer in self:
            if not left:
                break
            tracts = layer.geo.tracts_for_points([points[i] for i in left])
            for i, tract in zip(left, tracts, strict=True):
                if tract is not None:
                    found[i] = (layer, tract)
            left = [i for i, tract in zip(left, tracts, strict=True) if tract is None]
        return found

    def describe(self) -> list[dict[str, Any]]:
        return [layer.describe() for layer in self]
