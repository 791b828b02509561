"""The tract layer and its STRtree: point -> tract, tracts meeting a circle, outlines.

Used by the geo service and by ingestion (coordinates -> tracts), so both map points the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from tractcast.errors import InvalidInput, NotFound
from tractcast.geo.cells import CellGrid, GridSpec
from tractcast.geo.fields import choose_id_field, choose_name_field, id_text
from tractcast.geo.geodesy import areas_km2
from tractcast.geo.layers import Layer, read_layer
from tractcast.geo.outlines import Outlines
from tractcast.geo.packing import pack

NO_TRACT = -1
# Outlines drawn on a map of the whole layer: ~500 m of simplification, ~10 m of rounding.
OUTLINE_TOLERANCE = 0.005
OUTLINE_DECIMALS = 4


# Named tuples, not dataclasses: radius answers and batches make thousands per request.
class Tract(NamedTuple):
    id: str
    name: str


class TractHit(NamedTuple):
    tract: Tract
    distance_km: float  # geodesic distance from the query point to the polygon (0 when inside)


class RadiusHits(NamedTuple):
    """Tracts meeting a circle as positions in their layer's tract list, nearest first, then by
    id: what the API's copy of geo's layer answers (the tracts come with the copy)."""

    layer: str  # fingerprint of the layer the positions index
    tracts: Sequence[Tract]  # the layer's tracts, by position
    positions: np.ndarray | Sequence[int]
    distances_km: np.ndarray | Sequence[float]

    def tract_hits(self) -> list[TractHit]:
        tracts = self.tracts
        positions = np.asarray(self.positions, dtype=np.intp).tolist()
        distances = np.asarray(self.distances_km, dtype=np.float64).tolist()
        return [
            TractHit(tracts[position], distance)
            for position, distance in zip(positions, distances, strict=True)
        ]


class TractIndex:
    """Polygons of one tract layer in WGS84, a Shapely STRtree over them, and a cell grid.

    The grid answers most points of a batch by one array read; the tree and the prepared
    polygons answer the rest exactly. Radius queries measure distances on the rings' vertex
    arrays, kept beside the polygons, instead of building projected copies of the polygons.
    """

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
        self._outlines = Outlines.of(self._geometries, [tract.id for tract in self._tracts])
        self._areas = areas_km2(self._geometries)  # which of several layers' tracts is finest
        self._grid = CellGrid(self._geometries, self._exact_positions)
        self._layer_id = layer_fingerprint(self._geometries, self._tracts)

    @classmethod
    def from_file(cls, path: str | Path, id_field: str | None = None) -> TractIndex:
        """Read GeoJSON, TopoJSON, Shapefile or GeoPackage with Fiona, reprojecting to WGS84."""
        return cls(read_layer(path), id_field)

    @property
    def tracts(self) -> list[Tract]:
        return list(self._tracts)

    def tract_at(self, position: int) -> Tract:
        """The tract at a position of `tracts` (what the positions_* methods return)."""
        return self._tracts[position]

    @property
    def geometries(self) -> np.ndarray:
        """The polygons, in `tracts` order (a read-only array of Shapely geometries)."""
        view = self._geometries.view()
        view.flags.writeable = False
        return view

    @property
    def areas_km2(self) -> np.ndarray:
        """Each tract's area in km² (geodesy.areas_km2), in `tracts` order; read-only."""
        view = self._areas.view()
        view.flags.writeable = False
        return view

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the whole layer, in degrees."""
        west, south, east, north = shapely.total_bounds(self._geometries)
        return float(west), float(south), float(east), float(north)

    def __len__(self) -> int:
        return len(self._tracts)

    def properties(self) -> list[dict[str, Any]]:
        """Each tract's layer properties, in `tracts` order (ingestion joins data to them)."""
        return [dict(props) for props in self._properties]

    def tract_for_point(self, lat: float, lon: float) -> Tract | None:
        return self.lookup(lat, lon)[0]

    def lookup(self, lat: float, lon: float) -> tuple[Tract | None, int | None]:
        """The point's tract, and its cell of `grid` when every point of that cell has the
        same answer (None when a border crosses the cell)."""
        position, cell = self._grid.position(float(lat), float(lon))
        return (None if position == NO_TRACT else self._tracts[position]), cell

    @property
    def grid(self) -> GridSpec:
        return self._grid.spec

    def border_share(self) -> float:
        """Share of grid cells a border crosses: points there need the exact test."""
        return self._grid.border_share()

    def replica(self) -> dict[str, Any]:
        """What a client needs to answer points wherever no border passes, and radius queries,
        itself: the layer's fingerprint, its tracts in position order with their areas, the
        answer of every grid cell and the rings' vertices."""
        return {
            "layer": self._layer_id,
            "ids": [tract.id for tract in self._tracts],
            "names": [tract.name for tract in self._tracts],
            "areas_km2": pack(self._areas, "<f4"),
            **self._grid.answers.to_dict(),
            "outlines": self._outlines.to_dict(),
        }

    @property
    def layer_id(self) -> str:
        """A fingerprint of the polygons and their tracts: it changes when the layer does."""
        return self._layer_id

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
        return self._grid.positions(lat, lon)

    def _exact_positions(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """positions_for_points without the grid: the tree, then the prepared polygons."""
        # Bounding boxes from the tree, then the exact test on prepared polygons, both vectorised:
        # faster than a predicate inside the tree query, which cannot use the prepared polygons.
        point_idx, tract_idx = self._tree.query(shapely.points(np.column_stack((lon, lat))))
        inside = shapely.intersects_xy(self._geometries[tract_idx], lon[point_idx], lat[point_idx])
        positions = np.full(lat.size, len(self._tracts), dtype=np.int64)
        np.minimum.at(positions, point_idx[inside], tract_idx[inside])
        positions[positions == len(self._tracts)] = NO_TRACT
        return positions

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> list[TractHit]:
        """Tracts whose polygon meets the circle, nearest first, with geodesic distances to the
        metre."""
        positions, distances = self.positions_within_radius(lat, lon, radius_km)
        tracts = self._tracts
        return [
            TractHit(tracts[position], distance)
            for position, distance in zip(positions.tolist(), distances.tolist(), strict=True)
        ]

    def positions_within_radius(
        self, lat: float, lon: float, radius_km: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """tracts_within_radius as arrays: tract positions, and their geodesic km to the metre
        (0 inside), sorted by distance, then tract id."""
        return self._outlines.within_radius(lat, lon, radius_km)

    def outline(self, tract_id: str) -> dict[str, Any]:
        """The tract as a GeoJSON Feature: its id, its name and its WGS84 geometry."""
        tract = self.tract(tract_id)
        return {
            "type": "Feature",
            "id": tract.id,
            "properties": {"id": tract.id, "name": tract.name},
            "geometry": mapping(self.geometry(tract_id)),
        }

    def simplified_outlines(
        self, tolerance: float = OUTLINE_TOLERANCE, decimals: int = OUTLINE_DECIMALS
    ) -> dict[str, Any]:
        """Every tract as one GeoJSON FeatureCollection, light enough to draw a whole layer:
        outlines simplified to `tolerance` degrees, coordinates rounded to `decimals` places."""
        simplified = shapely.simplify(self._geometries, tolerance, preserve_topology=True)
        rounded = shapely.transform(simplified, lambda xy: np.round(xy, decimals))
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": tract.id,
                    "properties": {"id": tract.id, "name": tract.name},
                    "geometry": mapping(geometry),
                }
                for tract, geometry in zip(self._tracts, rounded, strict=True)
            ],
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


def layer_fingerprint(geometries: np.ndarray, tracts: list[Tract]) -> str:
    digest = hashlib.sha256()
    for tract in tracts:
        digest.update(f"{tract.id}\x1f{tract.name}\x1e".encode())
    for wkb in shapely.to_wkb(geometries):
        digest.update(wkb)
    return digest.hexdigest()[:16]


def tract_of(props: dict[str, Any], id_field: str, name_field: str) -> Tract:
    """The Tract a feature's properties describe; a missing name falls back to the id."""
    tract_id = id_text(props.get(id_field))
    name = props.get(name_field)
    return Tract(tract_id, str(name).strip() if name not in (None, "") else tract_id)
