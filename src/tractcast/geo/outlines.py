"""The rings' vertices of a tract layer, and the tracts they put within a radius of a point.

Radius queries need no polygon objects: the bounding boxes pick the candidate tracts, the
vertices in an azimuthal plane around the point give each candidate's nearest boundary point
and whether it holds the point, and the geodesic to that nearest point is the distance. The
geo service answers with this code, and so does the API from its copy of the arrays (sent by
`to_dict`), so both give the same tracts at the same distances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import shapely

from tractcast.geo.geodesy import (
    azimuthal,
    boxes_within_km,
    far_cosines,
    geodesic_km,
    search_boxes,
    wrap_degrees,
)
from tractcast.geo.packing import pack, unpack

# Vertices are kept as whole 1e-7 degrees (about a centimetre): exact integers to send, and the
# same floats wherever they are rebuilt.
SCALE = 10_000_000
# How far the sphere the bounding boxes are measured on can be from the WGS84 ellipsoid: a
# tract is a candidate when its box is nearer than the radius plus this share of it.
ELLIPSOID_MARGIN = 0.01
# A point nearer than this (in degrees) to a polygon's boundary is left to the polygons
# themselves: far above the vertices' rounding (half of 1e-7 degrees), so any point farther
# lies on the same side of the rounded boundary as of the true one.
BOUNDARY_MARGIN = 1e-6
# The share of polygons, the tallest, that radius queries test box by box: the others are sorted
# by their south edge, and only those whose south lies within the tallest of them below a search
# box can meet it.
TALL_SHARE = 0.01


def metre_km(distances_km: np.ndarray) -> np.ndarray:
    """Distances to the whole metre, in km: as every radius answer shows them."""
    return np.rint(distances_km * 1000) / 1000


@dataclass(frozen=True)
class Outlines:
    """Every ring vertex of a layer, grouped by polygon in layer order."""

    lons: np.ndarray  # degrees, float64
    lats: np.ndarray
    step: np.ndarray  # float32: 1 where the next vertex continues the ring, 0 on a ring's last
    first: np.ndarray  # per polygon: index of its first vertex
    count: np.ndarray  # per polygon: how many vertices its rings hold
    bounds: np.ndarray  # (4, polygons): west, south, east and north of each polygon's vertices
    rank: np.ndarray  # per polygon: rank of its tract id (equal distances are ordered by id)
    # What radius queries need of the polygons, made once (see _BoxIndex)
    _boxes: _BoxIndex = field(init=False, repr=False, compare=False)
    _by_rank: np.ndarray = field(init=False, repr=False, compare=False)  # position of each rank
    _ids_ascend: bool = field(init=False, repr=False, compare=False)  # rank is the position

    def __post_init__(self) -> None:
        positions = np.arange(len(self.rank))
        by_rank = np.empty_like(self.rank)
        by_rank[self.rank] = positions
        object.__setattr__(self, "_by_rank", by_rank)
        object.__setattr__(self, "_ids_ascend", bool(np.array_equal(self.rank, positions)))
        object.__setattr__(self, "_boxes", _BoxIndex.of(self.bounds))

    @classmethod
    def of(cls, geometries: np.ndarray, ids: Sequence[str]) -> Outlines:
        """The vertices of Shapely polygons, `ids` naming their tracts in the same order."""
        parts, polygon_of_part = shapely.get_parts(geometries, return_index=True)
        rings, part_of_ring = shapely.get_rings(parts, return_index=True)
        xy, ring_of_vertex = shapely.get_coordinates(rings, return_index=True)
        polygon = polygon_of_part[part_of_ring][ring_of_vertex]  # ascending: order is kept
        step = np.zeros(len(xy), dtype=np.uint8)
        step[:-1] = ring_of_vertex[1:] == ring_of_vertex[:-1]
        count = np.bincount(polygon, minlength=len(geometries))
        units = np.rint(xy * SCALE).astype(np.int64)
        return cls.from_units(units[:, 0], units[:, 1], step, count, ids)

    @classmethod
    def from_units(
        cls,
        lon_units: np.ndarray,
        lat_units: np.ndarray,
        step: np.ndarray,
        count: np.ndarray,
        ids: Sequence[str],
    ) -> Outlines:
        """Outlines from vertices in 1e-7 degrees; ValueError when they do not form rings."""
        count = np.asarray(count, dtype=np.int64)
        total = len(lon_units)
        if len(count) != len(ids) or count.min(initial=0) < 0 or count.sum() != total:
            raise ValueError("the polygons' vertex counts do not add up to the vertices")
        if len(lat_units) != total or len(step) != total or not np.isin(step, (0, 1)).all():
            raise ValueError("every vertex needs a longitude, a latitude and a step of 0 or 1")
        if np.abs(lat_units).max(initial=0) > 90 * SCALE:
            raise ValueError("a latitude lies beyond a pole")
        first = np.cumsum(count) - count
        filled = count > 0
        if step[(first + count - 1)[filled]].any():
            raise ValueError("a ring runs on past the end of its polygon")
        lons, lats = lon_units / SCALE, lat_units / SCALE
        bounds = np.full((4, len(count)), np.nan)  # an empty polygon is never a candidate
        starts = first[filled]
        for row, (values, reduce) in enumerate(
            ((lons, np.minimum), (lats, np.minimum), (lons, np.maximum), (lats, np.maximum))
        ):
            if total:
                bounds[row, filled] = reduce.reduceat(values, starts)
        rank = np.argsort(np.argsort(np.asarray(ids, dtype=str), kind="stable"), kind="stable")
        return cls(lons, lats, step.astype(np.float32), first, count, bounds, rank)

    def __len__(self) -> int:
        return len(self.count)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, packed: vertices as differences from the one before (small integers,
        which zlib's fastest level already packs to a fifth)."""
        return {
            "scale": SCALE,
            "count": pack(self.count, "<i4"),
            "lon": pack(np.diff(self._units(self.lons), prepend=0), "<i8", level=1),
            "lat": pack(np.diff(self._units(self.lats), prepend=0), "<i8", level=1),
            "step": pack(self.step, "<u1"),
        }

    @classmethod
    def from_dict(cls, value: Any, ids: Sequence[str]) -> Outlines:
        """Inverse of to_dict for the layer whose tracts are `ids`; ValueError when malformed."""
        if not isinstance(value, dict) or value.get("scale") != SCALE:
            raise ValueError(f"outlines must be an object of vertices in 1/{SCALE} degrees")
        count = unpack(value.get("count"), "<i4", len(ids)).astype(np.int64)
        total = int(count.sum())  # from_units refuses negative counts
        lon_units = np.cumsum(unpack(value.get("lon"), "<i8", total))
        lat_units = np.cumsum(unpack(value.get("lat"), "<i8", total))
        step = unpack(value.get("step"), "<u1", total)
        return cls.from_units(lon_units, lat_units, step, count, ids)

    def position_holding(self, lat: float, lon: float) -> int | None:
        """The first polygon in layer order holding the point, in the lon/lat plane as the geo
        index tests it; -1 when none does; None when the point lies within BOUNDARY_MARGIN of
        the boundary of a polygon whose box holds it, where only the polygons can tell."""
        west, south, east, north = self.bounds
        boxed = np.flatnonzero((west <= lon) & (lon <= east) & (south <= lat) & (lat <= north))
        for position in boxed.tolist():
            start = self.first[position]
            span = slice(start, start + self.count[position])
            lons, lats = self.lons[span], self.lats[span]
            edge = np.flatnonzero(self.step[span])  # from a vertex to the next of its ring
            x0, y0 = lons[edge] - lon, lats[edge] - lat  # the point at the origin
            dx, dy = lons[edge + 1] - lons[edge], lats[edge + 1] - lats[edge]
            length2 = dx * dx + dy * dy
            t = np.clip(-(x0 * dx + y0 * dy) / np.where(length2 > 0, length2, 1.0), 0, 1)
            nearest2 = (x0 + t * dx) ** 2 + (y0 + t * dy) ** 2
            if nearest2.min(initial=np.inf) <= BOUNDARY_MARGIN**2:
                return None
            # An odd number of edges crossing the positive x axis: inside (holes and parts too).
            crossing = (y0 > 0) != (y0 + dy > 0)
            x0, y0, dx, dy = x0[crossing], y0[crossing], dx[crossing], dy[crossing]
            if np.count_nonzero(x0 - y0 * dx / dy > 0) % 2 == 1:
                return int(position)
        return -1

    def within_radius(
        self, lat: float, lon: float, radius_km: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the polygons meeting the circle and their geodesic km from the point to
        the metre (0 for a polygon holding it), sorted by that distance, then tract id."""
        reach = radius_km * (1 + ELLIPSOID_MARGIN)
        candidates, boxed = self._candidates(lat, lon, radius_km, reach)
        if len(candidates) == 0:
            return candidates, np.zeros(0)
        near_lons, near_lats, inside = self._nearest(lat, lon, candidates, boxed)
        distances = np.zeros(len(candidates))
        outside = np.flatnonzero(~inside)
        distances[outside] = geodesic_km(lat, lon, near_lats[outside], near_lons[outside])
        keep = np.flatnonzero(distances <= radius_km)
        shown = metre_km(distances[keep])
        metres = np.rint(shown * 1000).astype(np.int64)
        if self._ids_ascend:  # the candidates, in layer order, are in id order: keep it on ties
            order = _stable_order(metres)
            return candidates[keep[order]], shown[order]
        # One integer key, whole metres then id rank, sorted: both come back from it (a sort is
        # faster than an argsort, and a lexsort of the two slower still). Its metres over 1000
        # are the distance shown: rint(shown * 1000) is the whole metres shown was made of.
        size = len(self)
        keys = metres
        keys *= size
        keys += self.rank[candidates[keep]]
        keys.sort()
        positions = self._by_rank[keys % size]
        return positions, (keys // size) / 1000

    def _candidates(
        self, lat: float, lon: float, radius_km: float, reach: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Polygons whose bounding box meets a lon/lat box around the circle, less those whose
        box lies in a corner of it, which would cost their vertices' work for nothing; and
        whether each one's box holds the centre."""
        # In layer order, as the rings' vertices lie: gathering them is then far cheaper.
        hit = np.zeros(len(self), dtype=bool)
        for box in search_boxes(lat, lon, radius_km):
            hit[self._boxes.meeting(*box)] = True
        candidates = np.flatnonzero(hit)
        west, south, east, north = (np.take(edges, candidates) for edges in self.bounds)
        bounds = np.array([west, south, east, north])
        cos_far = np.take(self._boxes.cos_far, candidates)
        boxed = (west <= lon) & (lon <= east) & (south <= lat) & (lat <= north)
        within = np.flatnonzero(boxes_within_km(lat, lon, bounds, reach, cos_far))
        return candidates[within], boxed[within]

    def _nearest(
        self, lat: float, lon: float, candidates: np.ndarray, boxed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per candidate: the lon and lat of its boundary point nearest to the centre, and
        whether it holds the centre (tested only where its box does: `boxed`)."""
        counts = self.count[candidates]
        ends = np.cumsum(counts)
        starts = ends - counts
        total = int(ends[-1])
        vertex = _ranges(self.first[candidates], counts)
        lons, lats = self.lons[vertex], self.lats[vertex]
        x, y = azimuthal(lat, lon, lats, lons)
        continues = self.step[vertex]
        # Each edge from a vertex to the next one of its ring; a ring's last vertex has none.
        ex, ey = np.zeros_like(x), np.zeros_like(y)
        np.subtract(x[1:], x[:-1], out=ex[:-1])
        np.subtract(y[1:], y[:-1], out=ey[:-1])
        ex *= continues
        ey *= continues
        # Nearest point of each edge to the centre (the plane's origin), then of each polygon:
        # t = clip(-(x ex + y ey) / (ex ex + ey ey, or 1 where 0), 0, 1), px = x + t ex, ...
        length2 = ex * ex
        length2 += np.multiply(ey, ey, out=continues)
        length2[~(length2 > 0)] = 1
        t = x * ex
        t += np.multiply(y, ey, out=continues)
        np.negative(t, out=t)
        t /= length2
        np.clip(t, 0, 1, out=t)
        squared = np.multiply(t, ex, out=length2)
        squared += x
        squared *= squared
        py = np.multiply(t, ey, out=continues)
        py += y
        py *= py
        squared += py
        # Minimum and where it lies in one pass: a non-negative float's bits order like it.
        keys = squared.view(np.int32).astype(np.int64)
        keys <<= 32
        keys |= np.arange(total)
        chosen = np.minimum.reduceat(keys, starts)
        chosen &= 0xFFFFFFFF
        # The same share of the edge in lon/lat: a point of the polygon's own boundary.
        share = t[chosen].astype(np.float64)
        following = chosen + (share > 0)  # share > 0 only on an edge, never a ring's last vertex
        chosen_lons, chosen_lats = lons[chosen], lats[chosen]
        dlon = np.subtract(lons[following], chosen_lons)
        dlon += 180.0
        wrap_degrees(dlon)
        dlon -= 180.0  # (lons[following] - lons[chosen] + 180) % 360 - 180
        near_lons = chosen_lons + share * dlon
        near_lats = chosen_lats + share * (lats[following] - chosen_lats)
        inside = self._holds_centre(np.flatnonzero(boxed), x, y, ex, ey, starts, ends)
        return near_lons, near_lats, inside

    @staticmethod
    def _holds_centre(
        boxed: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        ex: np.ndarray,
        ey: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
    ) -> np.ndarray:
        """Whether each candidate holds the centre: an odd number of its edges cross the
        plane's positive x axis (holes and separate parts are rings like any other). Only the
        few candidates whose box holds the centre (`boxed`) are tested, all at once."""
        inside = np.zeros(len(starts), dtype=bool)  # one per candidate
        if len(boxed) == 0:
            return inside
        counts = ends[boxed] - starts[boxed]
        edge = _ranges(starts[boxed], counts)
        x0, y0, dx, dy = x[edge], y[edge], ex[edge], ey[edge]
        crossing = np.flatnonzero((y0 > 0) != (y0 + dy > 0))
        right = np.zeros(len(edge), dtype=np.int64)
        x0, y0, dx, dy = x0[crossing], y0[crossing], dx[crossing], dy[crossing]
        right[crossing] = x0 - y0 * dx / dy > 0
        inside[boxed] = np.add.reduceat(right, np.cumsum(counts) - counts) % 2 == 1
        return inside

    @staticmethod
    def _units(degrees: np.ndarray) -> np.ndarray:
        return np.rint(degrees * SCALE).astype(np.int64)


def _stable_order(values: np.ndarray) -> np.ndarray:
    """np.argsort(values, kind="stable") for values in [0, 2**32): two radix sorts of 16 bits
    (numpy's stable sort of 16-bit integers), or one when all are below 2**16."""
    if values.max(initial=0) >= 2**32:
        return np.argsort(values, kind="stable")
    order = np.argsort(values.astype(np.uint16), kind="stable")  # the low 16 bits
    high = values >> 16
    if high.any():
        order = order[np.argsort(high[order].astype(np.uint16), kind="stable")]
    return order


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices of several spans (each `counts` long from `starts`, none empty), one after
    the other."""
    ends = np.cumsum(counts)
    if len(ends) == 0:
        return np.zeros(0, dtype=np.int64)
    # Each index is the one before plus 1, but where a span begins (a sum of steps: several
    # times faster than a repeat of the starts).
    steps = np.ones(int(ends[-1]), dtype=np.int64)
    steps[0] = starts[0]
    steps[ends[:-1]] = starts[1:] - starts[:-1] - counts[:-1] + 1
    return np.cumsum(steps, out=steps)


class _BoxIndex(NamedTuple):
    """The polygons' bounding boxes as radius queries look for those meeting a search box: all
    but the tallest sorted by south edge (a box can only meet those whose south lies between
    its north and its south less the tallest's height), the tallest apart, tested one by one;
    and each polygon's cos_far (see box_distance_km)."""

    order: np.ndarray  # positions of the boxes but the tallest, by south edge
    table: np.ndarray  # (4, boxes): their west, south, east and north, in that order
    height: float  # degrees: the tallest of them, and a margin for rounding
    tall: np.ndarray  # positions of the tallest boxes
    tall_table: np.ndarray  # their edges, as `table`
    cos_far: np.ndarray  # per polygon

    @classmethod
    def of(cls, bounds: np.ndarray) -> _BoxIndex:
        _, south, _, north = bounds
        filled = np.flatnonzero(~np.isnan(south))  # an empty polygon is never a candidate
        heights = north[filled] - south[filled]
        limit = float(np.quantile(heights, 1 - TALL_SHARE)) if len(filled) else 0.0
        short, tall = filled[heights <= limit], filled[heights > limit]
        order = short[np.argsort(south[short], kind="stable")]
        height = float(heights.max(initial=0, where=heights <= limit))
        # the margin: far above the rounding of a south edge less the height
        return cls(
            order, bounds[:, order], height + 1e-9, tall, bounds[:, tall], far_cosines(south, north)
        )

    def meeting(self, west: float, south: float, east: float, north: float) -> np.ndarray:
        """The positions of the polygons whose box meets this one (lon/lat edges), unordered."""
        low, high = np.searchsorted(self.table[1], (south - self.height, north), side="right")
        band = self.table[:, low:high]
        hit = np.flatnonzero(
            (band[0] <= east) & (band[2] >= west) & (band[1] <= north) & (band[3] >= south)
        )
        tall = self.tall_table
        also = np.flatnonzero(
            (tall[0] <= east) & (tall[2] >= west) & (tall[1] <= north) & (tall[3] >= south)
        )
        return np.concatenate([self.order[low + hit], self.tall[also]])
