"""Distances on the Earth: search boxes around a circle, an azimuthal plane, geodesics; areas."""

from __future__ import annotations

import math

import numpy as np
import shapely

EARTH_RADIUS_KM = 6371.0088  # mean radius; only used to place things, never for the final distance
Box = tuple[float, float, float, float]  # west, south, east, north


def search_boxes(lat: float, lon: float, radius_km: float) -> list[Box]:
    """Lon/lat boxes that together cover the circle (two when it crosses the antimeridian)."""
    # 1 % margin covers the gap between the sphere used here and the WGS84 ellipsoid.
    angle = radius_km / EARTH_RADIUS_KM * 1.01
    dlat = math.degrees(angle)
    south, north = max(lat - dlat, -90.0), min(lat + dlat, 90.0)
    reach = math.sin(angle) / max(math.cos(math.radians(lat)), 1e-12)
    if north >= 90.0 or south <= -90.0 or reach >= 1.0 or angle >= math.pi / 2:
        return [(-180.0, south, 180.0, north)]
    dlon = math.degrees(math.asin(reach))
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        return [(west + 360.0, south, 180.0, north), (-180.0, south, east, north)]
    if east > 180.0:
        return [(west, south, 180.0, north), (-180.0, south, east - 360.0, north)]
    return [(west, south, east, north)]


def far_cosines(south: np.ndarray, north: np.ndarray) -> np.ndarray:
    """Per box, the cosine of its latitude farthest from the equator (box_distance_km's
    cos_far): boxes that stay may keep it, as it does not depend on the point."""
    return np.minimum(np.cos(np.radians(south)), np.cos(np.radians(north)))


def box_distance_km(
    lat: float, lon: float, bounds: np.ndarray, cos_far: np.ndarray | None = None
) -> np.ndarray:
    """A lower bound of the spherical km from the point to each box, `bounds` holding their
    west, south, east and north edges as four rows (`cos_far` their far_cosines, if known).

    The haversine of the distance is hav(dlat) + cos(lat1) cos(lat2) hav(dlon); each term is
    bounded below by its value at the box's nearest latitude, its nearest longitude and its
    latitude farthest from the equator. A box across the antimeridian is never excluded.
    """
    west, south, east, north = bounds
    dlat = np.radians(np.maximum(np.maximum(south - lat, lat - north), 0.0))
    dlon = np.radians(np.maximum(np.maximum(west - lon, lon - east), 0.0))
    dlon[(dlon > math.pi) | (east - west >= 360.0)] = 0.0
    if cos_far is None:
        cos_far = far_cosines(south, north)
    cos_lat = math.cos(math.radians(lat))
    haversine = np.sin(dlat / 2) ** 2 + cos_lat * np.maximum(cos_far, 0.0) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(haversine, 1.0)))


def boxes_within_km(
    lat: float, lon: float, bounds: np.ndarray, km: float, cos_far: np.ndarray | None = None
) -> np.ndarray:
    """Whether box_distance_km(lat, lon, bounds, cos_far) <= km, for each box.

    The bound is computed only for boxes offset from the point by more than an ellipse of
    latitudes and longitudes whose every point is nearer than km (with 0.1 % to spare): the
    boxes inside a circle, but for a thin ring at its edge, are within without a sine.
    """
    west, south, east, north = bounds
    dlat = np.maximum(np.maximum(south - lat, lat - north), 0.0)
    dlon = np.maximum(np.maximum(west - lon, lon - east), 0.0)
    # hav(distance) <= hav(dlat) + cos(lat) hav(dlon), and hav(x) = sin(x / 2)^2 <= (x / 2)^2.
    angle = min(0.999 * km / EARTH_RADIUS_KM, math.pi)
    limit = math.degrees(2 * math.sin(angle / 2)) ** 2
    within = dlat * dlat + math.cos(math.radians(lat)) * (dlon * dlon) <= limit
    unsure = np.flatnonzero(~within)
    far = None if cos_far is None else cos_far[unsure]
    within[unsure] = box_distance_km(lat, lon, bounds[:, unsure], far) <= km
    return within


def azimuthal(
    lat: float, lon: float, lats: np.ndarray, lons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """An azimuthal projection of points around (lat, lon), as float32 (east, north).

    Directions from the centre are true, and the distance from the origin grows with the angular
    distance from the centre: it is the sine of that angle when every point lies within 45
    degrees of the centre in latitude and longitude (then none is 90 degrees away or more), the
    angle itself otherwise. It only locates nearest points, never measures them.
    """
    sin_phi0, cos_phi0 = math.sin(math.radians(lat)), math.cos(math.radians(lat))
    # Trigonometry of differences from the centre keeps float32 (several times faster)
    # precise: small angles keep their relative precision.
    # (Each step into an array of its own where it can: the same floats as the expressions.)
    dlam = np.radians(_float32_difference(lons, lon))  # radians((lons - lon) as float32)
    dphi = np.radians(_float32_difference(lats, lat))
    widest = np.abs(dlam).max(initial=0)
    if widest > math.pi:  # across the antimeridian
        dlam = (dlam + np.float32(math.pi)) % np.float32(2 * math.pi) - np.float32(math.pi)
        widest = np.abs(dlam).max(initial=0)
    cos_phi = np.add(dphi, np.float32(math.radians(lat)))
    np.cos(cos_phi, out=cos_phi)  # cos(dphi + lat)
    versine = np.divide(dlam, 2)
    np.sin(versine, out=versine)
    versine **= 2
    versine *= 2  # 2 sin(dlam / 2)^2 = 1 - cos(dlam), without cancellation
    east = np.sin(dlam, out=dlam)
    east *= cos_phi  # sin(dlam) cos_phi
    north = np.multiply(np.float32(sin_phi0), cos_phi)
    north *= versine
    north += np.sin(dphi)  # sin(dphi) + sin_phi0 cos_phi versine
    # Orthographic within 45 degrees: cos of the angle >= cos 45 - (1 - cos 45) > 0 for all.
    if max(widest, np.abs(dphi).max(initial=0)) <= math.pi / 4:
        return east, north
    # Equidistant: beyond 90 degrees the sine would fold the far side back onto the near one.
    cos_c = np.cos(dphi) - np.float32(cos_phi0) * cos_phi * versine
    sin_c = np.sqrt(east * east + north * north)
    scale = np.arctan2(sin_c, cos_c) / np.maximum(sin_c, np.float32(1e-30))
    return scale * east, scale * north


def wrap_degrees(shifted: np.ndarray) -> np.ndarray:
    """shifted %= 360.0 (a slow one), skipped when every value lies within [0, 360), which it
    would leave as they are: for degrees plus 180, as here, which are never -0.0."""
    if not (shifted.min(initial=0.0) >= 0.0 and shifted.max(initial=0.0) < 360.0):
        shifted %= 360.0
    return shifted


def _float32_difference(values: np.ndarray, origin: float) -> np.ndarray:
    """(values - origin).astype(float32) in one pass: the difference is taken in float64, then
    rounded."""
    difference = np.empty(len(values), dtype=np.float32)
    return np.subtract(values, origin, out=difference, casting="same_kind")


# WGS84, for Vincenty's inverse formula.
AXIS_M = 6378137.0
FLATTENING = 1 / 298.257223563
MINOR_AXIS_M = AXIS_M * (1 - FLATTENING)
VINCENTY_ITERATIONS = 30  # 2 to 4 settle every pair within 500 km; far pairs may take more


def geodesic_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """WGS84 geodesic km from (lat, lon) to each point.

    Vincenty's inverse formula, vectorised: within micrometres of Karney's algorithm (pyproj)
    and twice as fast on hundreds of points. The few points it does not converge for (nearly
    antipodal ones) are measured by pyproj.
    """
    lats, lons = np.asarray(lats, dtype=float), np.asarray(lons, dtype=float)
    if len(lats) == 0:
        return np.zeros(0)
    u1 = math.atan((1 - FLATTENING) * math.tan(math.radians(lat)))
    sin_u1, cos_u1 = math.sin(u1), math.cos(u1)
    # Each array operation of the formula, in its order, into buffers made once: the same floats
    # as the expressions written out (noted beside them), without a new array for each step.
    u2 = np.radians(lats)
    np.tan(u2, out=u2)
    u2 *= 1 - FLATTENING
    np.arctan(u2, out=u2)  # u2 = arctan((1 - f) tan(radians(lats)))
    sin_u2 = np.sin(u2)
    cos_u2 = np.cos(u2, out=u2)
    longitude = np.subtract(lons, lon)
    longitude += 180.0
    wrap_degrees(longitude)
    longitude -= 180.0
    np.radians(longitude, out=longitude)  # radians((lons - lon + 180) % 360 - 180)
    cross = cos_u1 * sin_u2
    dot = np.multiply(sin_u1, sin_u2, out=sin_u2)
    # Products that stay the same over the iterations (the same floats as written out in full).
    cos_cos, sin_cos, two_dot = cos_u1 * cos_u2, sin_u1 * cos_u2, 2 * dot
    sin_lam, cos_lam, north, sin_sigma, cos_sigma, sigma = (np.empty_like(lats) for _ in range(6))
    sin_alpha, cos2_alpha, cos_2sm, c, step = (np.empty_like(lats) for _ in range(5))
    lam, spare = longitude, np.empty_like(longitude)  # lam and the one before take turns
    for _ in range(VINCENTY_ITERATIONS):
        np.sin(lam, out=sin_lam)
        np.cos(lam, out=cos_lam)
        np.multiply(cos_u2, sin_lam, out=sin_sigma)  # east
        sin_sigma *= sin_sigma
        np.multiply(sin_cos, cos_lam, out=north)
        np.subtract(cross, north, out=north)
        north *= north
        sin_sigma += north
        np.sqrt(sin_sigma, out=sin_sigma)  # sqrt(east * east + north * north)
        np.multiply(cos_cos, cos_lam, out=cos_sigma)
        cos_sigma += dot  # dot + cos_cos * cos_lam
        np.arctan2(sin_sigma, cos_sigma, out=sigma)
        np.multiply(cos_cos, sin_lam, out=sin_alpha)
        positive = sin_sigma > 0
        sin_alpha /= sin_sigma if positive.all() else np.where(positive, sin_sigma, 1.0)
        np.multiply(sin_alpha, sin_alpha, out=cos2_alpha)
        np.subtract(1, cos2_alpha, out=cos2_alpha)
        meridian = cos2_alpha == 0  # along the equator
        if meridian.any():
            cos_2sm[...] = np.where(
                meridian, 0.0, cos_sigma - two_dot / np.where(meridian, 1.0, cos2_alpha)
            )
        else:
            np.divide(two_dot, cos2_alpha, out=cos_2sm)
            np.subtract(cos_sigma, cos_2sm, out=cos_2sm)
        # c = f / 16 * cos2_alpha * (4 + f * (4 - 3 * cos2_alpha))
        np.multiply(3, cos2_alpha, out=step)
        np.subtract(4, step, out=step)
        step *= FLATTENING
        step += 4
        np.multiply(FLATTENING / 16, cos2_alpha, out=c)
        c *= step
        # lam = longitude + (1 - c) * f * sin_alpha * (sigma + c * sin_sigma * (cos_2sm + c *
        # cos_sigma * (2 * cos_2sm * cos_2sm - 1)))
        np.multiply(2, cos_2sm, out=step)
        step *= cos_2sm
        step -= 1
        inner = np.multiply(c, cos_sigma, out=north)
        inner *= step
        inner += cos_2sm
        np.multiply(c, sin_sigma, out=step)
        step *= inner
        step += sigma
        np.subtract(1, c, out=inner)
        inner *= FLATTENING
        inner *= sin_alpha
        inner *= step
        previous, lam = lam, spare
        spare = previous if previous is not longitude else np.empty_like(longitude)
        np.add(longitude, inner, out=lam)
        np.subtract(lam, previous, out=step)
        np.abs(step, out=step)
        unsettled = step > 1e-12
        if not unsettled.any():
            break
    u2_sq = cos2_alpha * (AXIS_M**2 - MINOR_AXIS_M**2) / MINOR_AXIS_M**2
    a = 1 + u2_sq / 16384 * (4096 + u2_sq * (-768 + u2_sq * (320 - 175 * u2_sq)))
    b = u2_sq / 1024 * (256 + u2_sq * (-128 + u2_sq * (74 - 47 * u2_sq)))
    two = 2 * cos_2sm * cos_2sm - 1
    delta = (
        b
        * sin_sigma
        * (
            cos_2sm
            + b / 4 * (cos_sigma * two - b / 6 * cos_2sm * (4 * sin_sigma**2 - 3) * (2 * two - 1))
        )
    )
    metres = MINOR_AXIS_M * a * (sigma - delta)
    if unsettled.any():
        from pyproj import Geod  # only here: an API worker imports no pyproj until it needs it

        count = int(unsettled.sum())
        _, _, exact = Geod(ellps="WGS84").inv(
            np.full(count, lon), np.full(count, lat), lons[unsettled], lats[unsettled]
        )
        metres[unsettled] = exact
    return metres / 1000.0


def areas_km2(geometries: np.ndarray) -> np.ndarray:
    """Each polygon's area in km², near enough to tell a tract from one holding it: its area in
    the lon/lat plane, each degree of longitude narrowed by the cosine of the centroid's latitude
    (within a few per cent of the geodesic area for tracts up to a few hundred km across)."""
    if len(geometries) == 0:
        return np.zeros(0)
    degree_km = math.radians(EARTH_RADIUS_KM)
    latitudes = shapely.get_y(shapely.centroid(geometries))
    return shapely.area(geometries) * np.cos(np.radians(latitudes)) * degree_km * degree_km
