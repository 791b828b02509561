"""The tract layers an API process serves: per layer, its bundle holder and its client of geo.

A point is answered from the finest layer holding it: of the layers whose tract contains the
point, the one whose tract is smallest (by the areas in each layer's copy of geo's layer),
whatever order the layers file lists them in; on equal (or unknown) areas, the file's order.
What names no point (radius statistics, tract lists) is answered from the file's first layer
unless a layer is named.
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
    """The served layers, in the layers file's order. `named`: answers say which layer they
    come from (a deployment with a layers file); a deployment of one unnamed layer answers as it
    always has."""

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
        held = [(layer, layer.geo.tract_for_point(lat, lon)) for layer in self]
        return self._finest(held)

    def holding_points(
        self, points: Sequence[tuple[float, float]]
    ) -> list[tuple[ServedLayer, Tract | None]]:
        """holding() for many points, one batch per layer."""
        per_layer = [(layer, layer.geo.tracts_for_points(points)) for layer in self]
        return [
            self._finest([(layer, tracts[i]) for layer, tracts in per_layer])
            for i in range(len(points))
        ]

    def _finest(
        self, held: list[tuple[ServedLayer, Tract | None]]
    ) -> tuple[ServedLayer, Tract | None]:
        """Of each layer's tract for one point, the smallest; areas are compared only when
        several layers hold the point, and min() keeps the file's order on a tie."""
        found: list[tuple[ServedLayer, Tract]] = [
            (layer, tract) for layer, tract in held if tract is not None
        ]
        if not found:
            return self.first, None
        if len(found) == 1:
            return found[0]
        return min(found, key=lambda pair: pair[0].geo.replica.tract_area_km2(pair[1]))

    def describe(self) -> list[dict[str, Any]]:
        return [layer.describe() for layer in self]
