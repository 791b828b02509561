"""Distances on the Earth: search boxes around a circle, nearest boundary points, geodesics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import Polygon, box

EARTH_RADIUS_KM = 6371.0088  # mean radius; only used to place things, never for the final distance
GEOD = Geod(ellps="WGS84")


def search_boxes(lat: float, lon: float, radius_km: float) -> list[Polygon]:
    """Lon/lat boxes that together cover the circle (two when it crosses the antimeridian)."""
    # 1 % margin covers the gap between the sphere used here and the WGS84 ellipsoid.
    angle = radius_km / EARTH_RADIUS_KM * 1.01
    dlat = math.degrees(angle)
    south, north = max(lat - dlat, -90.0), min(lat + dlat, 90.0)
    reach = math.sin(angle) / max(math.cos(math.radians(lat)), 1e-12)
    if north >= 90.0 or south <= -90.0 or reach >= 1.0 or angle >= math.pi / 2:
        return [box(-180.0, south, 180.0, north)]
    dlon = math.degrees(math.asin(reach))
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        return [box(west + 360.0, south, 180.0, north), box(-180.0, south, east, north)]
    if east > 180.0:
        return [box(west, south, 180.0, north), box(-180.0, south, east - 360.0, north)]
    return [box(west, south, east, north)]


def box_distance_km(lat: float, lon: float, bounds: np.ndarray) -> np.ndarray:
    """A lower bound of the spherical km from the point to each (west, south, east, north) box.

    The haversine of the distance is hav(dlat) + cos(lat1) cos(lat2) hav(dlon); each term is
    bounded below by its value at the box's nearest latitude, its nearest longitude and its
    latitude farthest from the equator. A box across the antimeridian is never excluded.
    """
    west, south, east, north = bounds.T
    dlat = np.radians(np.maximum(np.maximum(south - lat, lat - north), 0.0))
    dlon = np.radians(np.maximum(np.maximum(west - lon, lon - east), 0.0))
    dlon[(dlon > math.pi) | (east - west >= 360.0)] = 0.0
    cos_far = np.minimum(np.cos(np.radians(south)), np.cos(np.radians(north)))
    cos_lat = math.cos(math.radians(lat))
    haversine = np.sin(dlat / 2) ** 2 + cos_lat * np.maximum(cos_far, 0.0) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(haversine, 1.0)))


@dataclass(frozen=True)
class Outlines:
    """Every ring vertex of a layer in lon/lat, grouped by polygon, for vectorised distances."""

    lons: np.ndarray
    lats: np.ndarray
    step: np.ndarray  # 1 where the next vertex continues the ring, 0 on a ring's last vertex
    first: np.ndarray  # per polygon: index of its first vertex
    count: np.ndarray  # per polygon: how many vertices its rings hold

    @classmethod
    def of(cls, geometries: np.ndarray) -> Outlines:
        parts, polygon_of_part = shapely.get_parts(geometries, return_index=True)
        rings, part_of_ring = shapely.get_rings(parts, return_index=True)
        xy, ring_of_vertex = shapely.get_coordinates(rings, return_index=True)
        polygon = polygon_of_part[part_of_ring][ring_of_vertex]  # ascending: order is kept
        step = np.zeros(len(xy), dtype=np.int64)
        step[:-1] = ring_of_vertex[1:] == ring_of_vertex[:-1]
        count = np.bincount(polygon, minlength=len(geometries)).astype(np.int64)
        first = np.cumsum(count) - count
        lons, lats = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
        return cls(lons, lats, step, first, count)

    def vertices_of(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the vertices of these polygons, in order, and each one's slot in positions."""
        counts = self.count[positions]
        ends = np.cumsum(counts)
        slot = np.repeat(np.arange(len(positions)), counts)
        within = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - counts, counts)
        return self.first[positions][slot] + within, slot


def azimuthal_km(
    lat: float, lon: float, lats: np.ndarray, lons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical azimuthal equidistant (east, north) km of points around (lat, lon).

    Distances from the centre are true on the sphere; good to a few millimetres per 100 km,
    it only locates nearest points, never measures them.
    """
    sin_phi0, cos_phi0 = math.sin(math.radians(lat)), math.cos(math.radians(lat))
    # Trigonometry of differences from the centre keeps float32 (several times faster)
    # precise: small angles keep their relative precision.
    dlam = np.radians((lons - lon).astype(np.float32))
    dphi = np.radians((lats - lat).astype(np.float32))
    if np.abs(dlam).max(initial=0) > math.pi:  # across the antimeridian
        dlam = (dlam + np.float32(math.pi)) % np.float32(2 * math.pi) - np.float32(math.pi)
    cos_phi = np.cos(dphi + np.float32(math.radians(lat)))
    versine = 2 * np.sin(dlam / 2) ** 2  # 1 - cos(dlam), without cancellation
    east = np.sin(dlam) * cos_phi
    north = np.sin(dphi) + np.float32(sin_phi0) * cos_phi * versine
    cos_c = np.cos(dphi) - np.float32(cos_phi0) * cos_phi * versine
    sin_c = np.sqrt(east * east + north * north)
    scale = np.float32(EARTH_RADIUS_KM) * np.arctan2(sin_c, cos_c)
    scale /= np.maximum(sin_c, np.float32(1e-30))
    return scale * east, scale * north  # float32: millimetres at 100 km


def from_azimuthal_km(lat: float, lon: float, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of azimuthal_km for an (n, 2) array of plane coordinates: (lons, lats)."""
    phi0, lam0 = math.radians(lat), math.radians(lon)
    c = np.hypot(xy[:, 0], xy[:, 1]) / EARTH_RADIUS_KM
    theta = np.arctan2(xy[:, 0], xy[:, 1])
    phi = np.arcsin(
        np.clip(math.sin(phi0) * np.cos(c) + math.cos(phi0) * np.sin(c) * np.cos(theta), -1, 1)
    )
    lam = lam0 + np.arctan2(
        np.sin(theta) * np.sin(c) * math.cos(phi0), np.cos(c) - math.sin(phi0) * np.sin(phi)
    )
    return np.degrees(lam), np.degrees(phi)


def nearest_boundary_points(
    lat: float, lon: float, outlines: Outlines, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each polygon in positions: the spherical km from the point to its nearest boundary
    point, and that point's lon and lat."""
    if len(positions) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    vertex, slot = outlines.vertices_of(positions)
    x, y = azimuthal_km(lat, lon, outlines.lats[vertex], outlines.lons[vertex])
    following = np.arange(len(vertex)) + outlines.step[vertex]
    ex, ey = x[following] - x, y[following] - y
    length2 = ex * ex + ey * ey
    # Nearest point of each segment to the centre (the plane's origin), then of each polygon.
    t = np.clip(-(x * ex + y * ey) / np.where(length2 > 0, length2, np.float32(1)), 0, 1)
    px, py = x + t * ex, y + t * ey
    squared = px * px + py * py
    starts = np.cumsum(outlines.count[positions]) - outlines.count[positions]
    best = np.minimum.reduceat(squared, starts)
    ties = np.flatnonzero(squared == best[slot])
    chosen = ties[np.flatnonzero(np.diff(slot[ties], prepend=-1))]
    nearest = np.column_stack((px[chosen], py[chosen])).astype(np.float64)
    near_lons, near_lats = from_azimuthal_km(lat, lon, nearest)
    return np.sqrt(best.astype(np.float64)), near_lons, near_lats


def geodesic_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """WGS84 geodesic km from (lat, lon) to each point."""
    if len(lats) == 0:
        return np.zeros(0)
    count = len(lats)
    _, _, metres = GEOD.inv(np.full(count, lon), np.full(count, lat), lons, lats)
    return np.asarray(metres) / 1000.0
