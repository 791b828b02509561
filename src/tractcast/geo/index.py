"""The tract layer and its STRtree: point -> tract, tracts meeting a circle, outlines.

Used by the geo service and by ingestion (coordinates -> tracts), so both map points the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from tractcast.errors import InvalidInput, NotFound
from tractcast.geo.fields import choose_id_field, choose_name_field, id_text
from tractcast.geo.geodesy import geodesic_distances_km, search_boxes
from tractcast.geo.layers import Layer, read_layer

NO_TRACT = -1


@dataclass(frozen=True)
class Tract:
    id: str
    name: str


@dataclass(frozen=True)
class TractHit:
    tract: Tract
    distance_km: float  # geodesic distance from the query point to the polygon (0 when inside)


class TractIndex:
    """Polygons of one tract layer in WGS84 with a Shapely STRtree over them."""

    id_field: str
    name_field: str

    def __init__(self, layer: Layer, id_field: str | None = None) -> None:
        if not layer.geometries:
            raise InvalidInput("the tract layer holds no polygon with a non-empty geometry")
        self.id_field = choose_id_field(layer.properties, id_field)
        self.name_field = choose_name_field(layer.properties, self.id_field)
        self.skipped = layer.skipped
        self._properties = layer.properties
        self._tracts = [
            tract_of(props, self.id_field, self.name_field) for props in layer.properties
        ]
        self._positions = {tract.id: position for position, tract in enumerate(self._tracts)}
        self._geometries = np.array(layer.geometries, dtype=object)
        shapely.prepare(self._geometries)
        self._tree = shapely.STRtree(self._geometries)

    @classmethod
    def from_file(cls, path: str | Path, id_field: str | None = None) -> TractIndex:
        """Read GeoJSON, TopoJSON, Shapefile or GeoPackage with Fiona, reprojecting to WGS84."""
        return cls(read_layer(path), id_field)

    @property
    def tracts(self) -> list[Tract]:
        return list(self._tracts)

    def __len__(self) -> int:
        return len(self._tracts)

    def properties(self) -> list[dict[str, Any]]:
        """Each tract's layer properties, in `tracts` order (ingestion joins data to them)."""
        return [dict(props) for props in self._properties]

    def tract_for_point(self, lat: float, lon: float) -> Tract | None:
        return self.tracts_for_points([lat], [lon])[0]

    def tracts_for_points(self, lats: Any, lons: Any) -> list[Tract | None]:
        return [
            None if position == NO_TRACT else self._tracts[position]
            for position in self.positions_for_points(lats, lons).tolist()
        ]

    def positions_for_points(self, lats: Any, lons: Any) -> np.ndarray:
        """Each point's tract position in `tracts`, NO_TRACT (-1) for points outside every tract.

        A point on a border shared by several tracts goes to the first of them in layer order.
        """
        lat = np.asarray(lats, dtype=float).ravel()
        lon = np.asarray(lons, dtype=float).ravel()
        if lat.shape != lon.shape:
            raise InvalidInput(f"got {lat.size} latitudes but {lon.size} longitudes")
        # Bounding boxes from the tree, then the exact test on prepared polygons, both vectorised:
        # faster than a predicate inside the tree query, which cannot use the prepared polygons.
        point_idx, tract_idx = self._tree.query(shapely.points(np.column_stack((lon, lat))))
        inside = shapely.intersects_xy(self._geometries[tract_idx], lon[point_idx], lat[point_idx])
        positions = np.full(lat.size, len(self._tracts), dtype=np.int64)
        np.minimum.at(positions, point_idx[inside], tract_idx[inside])
        positions[positions == len(self._tracts)] = NO_TRACT
        return positions

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> list[TractHit]:
        candidates = self._candidates_near(lat, lon, radius_km)
        distances = geodesic_distances_km(lat, lon, self._geometries[candidates])
        hits = [
            TractHit(self._tracts[position], float(distance))
            for position, distance in zip(candidates.tolist(), distances.tolist(), strict=True)
            if distance <= radius_km
        ]
        return sorted(hits, key=lambda hit: (hit.distance_km, hit.tract.id))

    def _candidates_near(self, lat: float, lon: float, radius_km: float) -> np.ndarray:
        """Positions of tracts whose bounding box meets the lon/lat boxes around the circle."""
        found = [self._tree.query(search_box) for search_box in search_boxes(lat, lon, radius_km)]
        return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)

    def outline(self, tract_id: str) -> dict[str, Any]:
        """The tract as a GeoJSON Feature: its id, its name and its WGS84 geometry."""
        tract = self.tract(tract_id)
        return {
            "type": "Feature",
            "id": tract.id,
            "properties": {"id": tract.id, "name": tract.name},
            "geometry": mapping(self.geometry(tract_id)),
        }

    def tract(self, tract_id: str) -> Tract:
        """The tract with this id; NotFound when the layer has none."""
        return self._tracts[self._position(tract_id)]

    def geometry(self, tract_id: str) -> BaseGeometry:
        return self._geometries[self._position(tract_id)]

    def _position(self, tract_id: str) -> int:
        try:
            return self._positions[tract_id]
        except KeyError:
            raise NotFound(f"no tract has id {tract_id!r}") from None


def tract_of(props: dict[str, Any], id_field: str, name_field: str) -> Tract:
    """The Tract a feature's properties describe; a missing name falls back to the id."""
    tract_id = id_text(props.get(id_field))
    name = props.get(name_field)
    return Tract(tract_id, str(name).strip() if name not in (None, "") else tract_id)
