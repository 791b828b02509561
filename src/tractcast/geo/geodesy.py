"""Distances on the Earth: search boxes around a circle and point-to-polygon geodesic distances."""

from __future__ import annotations

import math

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import Point, Polygon, box

EARTH_RADIUS_KM = 6371.0088  # mean radius; only used to place things, never for the final distance
GEOD = Geod(ellps="WGS84")
ORIGIN = Point(0.0, 0.0)


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


def to_azimuthal_km(lat: float, lon: float, geometries: np.ndarray) -> np.ndarray:
    """Project lon/lat geometries to a spherical azimuthal equidistant plane (km) around the point.

    Good to a few millimetres per 100 km: it only locates nearest points, never measures.
    """
    sin_phi0, cos_phi0 = math.sin(math.radians(lat)), math.cos(math.radians(lat))

    def project(lonlat: np.ndarray) -> np.ndarray:
        # Trigonometry of differences from the centre keeps float32 (several times faster)
        # precise: small angles keep their relative precision.
        delta = np.radians((lonlat - (lon, lat)).astype(np.float32).T)
        dlam, dphi = delta[0], delta[1]
        if np.abs(dlam).max(initial=0) > math.pi:  # across the antimeridian
            dlam = (dlam + np.float32(math.pi)) % np.float32(2 * math.pi) - np.float32(math.pi)
        cos_phi = np.cos(dphi + np.float32(math.radians(lat)))
        versine = 2 * np.sin(dlam / 2) ** 2  # 1 - cos(dlam), without cancellation
        east = np.sin(dlam) * cos_phi
        north = np.sin(dphi) + np.float32(sin_phi0) * cos_phi * versine
        cos_c = np.cos(dphi) - np.float32(cos_phi0) * cos_phi * versine
        sin_c = np.sqrt(east * east + north * north)
        c = np.arctan2(sin_c, cos_c)
        scale = EARTH_RADIUS_KM * c / np.maximum(sin_c, np.float32(1e-30))
        return np.column_stack((scale * east, scale * north)).astype(np.float64)

    return shapely.transform(geometries, project)


def from_azimuthal_km(lat: float, lon: float, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of to_azimuthal_km for an (n, 2) array of plane coordinates: (lons, lats)."""
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


def geodesic_distances_km(lat: float, lon: float, geometries: np.ndarray) -> np.ndarray:
    """WGS84 geodesic km from the point to the nearest point of each geometry (0 inside)."""
    if len(geometries) == 0:
        return np.zeros(0)
    # Find the nearest point in a plane where distances from the centre are true, then
    # measure the geodesic to it on the ellipsoid.
    projected = to_azimuthal_km(lat, lon, geometries)
    nearest = shapely.get_coordinates(
        shapely.get_point(shapely.shortest_line(ORIGIN, projected), 1)
    )
    lons, lats = from_azimuthal_km(lat, lon, nearest)
    count = len(geometries)
    _, _, metres = GEOD.inv(np.full(count, lon), np.full(count, lat), lons, lats)
    inside = shapely.intersects_xy(geometries, lon, lat)
    return np.where(inside, 0.0, np.asarray(metres) / 1000.0)
