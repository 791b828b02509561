"""Radius queries on the rings' vertices: geodesic distances, holes, the antimeridian, and the
copy the API holds answering exactly as geo does."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, box

from tractcast.geo.geodesy import (
    azimuthal,
    box_distance_km,
    boxes_within_km,
    geodesic_km,
    search_boxes,
)
from tractcast.geo.index import TractIndex
from tractcast.geo.layers import Layer
from tractcast.geo.outlines import Outlines, metre_km
from tractcast.geo.packing import pack, unpack

GEOD = Geod(ellps="WGS84")
SAN_MARINO = (43.9366, 12.4463)  # an enclave: a hole in the Italian municipalities around it


@pytest.fixture(scope="module")
def municipalities(italy_dir: Path) -> TractIndex:
    return TractIndex.from_file(italy_dir / "municipalities.geojson.gz")


def layer_of(*geometries: Any) -> TractIndex:
    properties = [{"code": f"T{i}", "name": f"Tract {i}"} for i in range(len(geometries))]
    return TractIndex(Layer(list(geometries), properties, 0))


def brute_km(geometry: Any, lat: float, lon: float) -> float:
    """Geodesic km to the nearest of the boundary's points every ~50 m."""
    xy = shapely.get_coordinates(shapely.segmentize(geometry.boundary, 0.0005))
    count = len(xy)
    _, _, metres = GEOD.inv(np.full(count, lon), np.full(count, lat), xy[:, 0], xy[:, 1])
    return float(metres.min()) / 1000


def test_radius_distances_are_the_geodesic_to_the_nearest_boundary_point(
    municipalities: TractIndex,
) -> None:
    for lat, lon in [(45.4642, 9.19), (41.9028, 12.4964), (38.1157, 13.3615)]:
        hits = municipalities.tracts_within_radius(lat, lon, 20.0)
        positions, distances = municipalities.positions_within_radius(lat, lon, 20.0)
        assert [hit.distance_km for hit in hits] == distances.tolist()
        assert hits[0].distance_km == 0.0 and len(hits) > 10
        assert hits[0].tract == municipalities.tract_for_point(lat, lon)
        for position, distance in list(zip(positions, distances, strict=True))[1::9]:
            brute = brute_km(municipalities.geometries[position], lat, lon)
            # The nearest point is found on the sphere, then measured on the ellipsoid: within a
            # metre of the true minimum, and never a vertex merely near it.
            assert distance <= brute + 0.001
            assert brute - distance < 0.06  # the dense outline has points every 50 m or so


def test_the_tract_holding_the_centre_comes_first_at_zero(municipalities: TractIndex) -> None:
    west, south, east, north = municipalities.bounds
    rng = np.random.default_rng(3)
    lats, lons = rng.uniform(south, north, 400), rng.uniform(west, east, 400)
    for lat, lon in zip(lats.tolist(), lons.tolist(), strict=True):
        holder = municipalities.tract_for_point(lat, lon)
        hits = municipalities.tracts_within_radius(lat, lon, 2.0)
        at_zero = [hit.tract for hit in hits if hit.distance_km == 0.0]
        if holder is None:
            assert at_zero == []  # at sea, or abroad: no tract is at distance zero
        else:
            assert at_zero == [holder]


def test_a_centre_in_an_enclave_is_outside_the_tract_around_it(
    municipalities: TractIndex,
) -> None:
    assert municipalities.tract_for_point(*SAN_MARINO) is None
    hits = municipalities.tracts_within_radius(*SAN_MARINO, 10.0)

    assert hits and hits[0].distance_km > 2.0  # the nearest border of Italy, not zero
    nearest = municipalities.geometry(hits[0].tract.id)
    assert hits[0].distance_km == pytest.approx(brute_km(nearest, *SAN_MARINO), abs=0.06)


def test_holes_and_separate_parts_are_rings_like_any_other() -> None:
    ring = Polygon(box(9.0, 45.0, 10.0, 46.0).exterior, [box(9.4, 45.4, 9.6, 45.6).exterior])
    islands = MultiPolygon([box(11.0, 45.0, 11.2, 45.2), box(11.5, 45.0, 11.7, 45.2)])
    index = layer_of(ring, islands)

    in_hole = index.tracts_within_radius(45.5, 9.5, 20.0)
    assert [hit.tract.id for hit in in_hole] == ["T0"]
    assert in_hole[0].distance_km == pytest.approx(geodesic_km(45.5, 9.5, [45.5], [9.6])[0], 1e-4)
    on_second_island = index.tracts_within_radius(45.1, 11.6, 5.0)
    assert [(hit.tract.id, hit.distance_km) for hit in on_second_island] == [("T1", 0.0)]


def test_a_circle_across_the_antimeridian_finds_tracts_on_both_sides() -> None:
    index = layer_of(box(179.5, -1.0, 180.0, 1.0), box(-180.0, -1.0, -179.5, 1.0))

    hits = index.tracts_within_radius(0.0, 179.9, 50.0)

    assert [hit.tract.id for hit in hits] == ["T0", "T1"]
    assert hits[0].distance_km == 0.0
    # Within 2 m: the box's 222 km edges are chords of the plane, not meridians.
    across = geodesic_km(0.0, 179.9, [0.0], [180.0])[0]
    assert hits[1].distance_km == pytest.approx(across, abs=0.002)


def test_equal_distances_are_ordered_by_tract_id() -> None:
    # The centre on the border two tracts share (listed in reverse id order): it meets both.
    index = TractIndex(
        Layer(
            [box(9.0, 45.0, 9.5, 45.5), box(8.5, 45.0, 9.0, 45.5)],
            [{"code": "B", "name": "Bee"}, {"code": "A", "name": "Ay"}],
            0,
        )
    )
    hits = index.tracts_within_radius(45.2, 9.0, 1.0)
    assert [(hit.tract.id, hit.distance_km) for hit in hits] == [("A", 0.0), ("B", 0.0)]


def test_no_point_of_a_box_is_nearer_than_its_lower_bound() -> None:
    rng = np.random.default_rng(5)
    west = np.concatenate([rng.uniform(0, 18, 200), rng.uniform(-179, 170, 100)])
    south = np.concatenate([rng.uniform(36, 52, 200), rng.uniform(-80, 75, 100)])
    bounds = np.column_stack(
        (west, south, west + rng.uniform(0.01, 3, 300), south + rng.uniform(0.01, 2, 300))
    )
    lat, lon = 44.0, 9.0
    lower = box_distance_km(lat, lon, bounds.T)
    for box_bounds, bound in zip(bounds, lower, strict=True):
        lons = np.linspace(box_bounds[0], box_bounds[2], 60)
        lats = np.linspace(box_bounds[1], box_bounds[3], 60)
        grid_lons, grid_lats = (v.ravel() for v in np.meshgrid(lons, lats))
        nearest = geodesic_km(lat, lon, grid_lats, grid_lons).min()
        # On the sphere: within the 1 % the radius query allows for the ellipsoid.
        assert bound <= nearest * 1.01
        if nearest < 1000:  # and close where radius queries look: far boxes are left out
            assert bound >= nearest * 0.97 - 5  # less the grid of samples' spacing
    assert box_distance_km(lat, lon, np.array([[8.0, 43.0, 10.0, 45.0]]).T)[0] == 0.0


def test_tracts_just_beyond_the_radius_are_left_out(municipalities: TractIndex) -> None:
    near = municipalities.positions_within_radius(45.4642, 9.19, 10.0)[0]
    wider_positions, wider = municipalities.positions_within_radius(45.4642, 9.19, 12.0)
    beyond = set(wider_positions[wider > 10.0].tolist())
    assert beyond and beyond.isdisjoint(near.tolist())
    assert set(near.tolist()) == set(wider_positions[wider <= 10.0].tolist())


def test_the_copy_sent_to_clients_answers_exactly_as_the_index(
    municipalities: TractIndex,
) -> None:
    sent = json.loads(json.dumps(municipalities.replica()))
    ids = sent["ids"]
    copy = Outlines.from_dict(sent["outlines"], ids)
    rng = np.random.default_rng(17)
    for _ in range(60):
        lat, lon = rng.uniform(36.5, 47.0), rng.uniform(6.5, 18.5)
        radius = float(rng.choice([1.0, 10.0, 50.0, 120.0]))
        positions, distances = municipalities.positions_within_radius(lat, lon, radius)
        copied, copied_km = copy.within_radius(lat, lon, radius)
        assert np.array_equal(copied, positions)
        assert np.array_equal(copied_km, distances)
    # 844,000 vertices travel as a few MB of text.
    assert len(sent["outlines"]["lon"]) + len(sent["outlines"]["lat"]) < 8_000_000


def test_the_copy_finds_the_tract_of_a_point_as_the_index_does_and_leaves_borders_to_it(
    municipalities: TractIndex,
) -> None:
    sent = json.loads(json.dumps(municipalities.replica()))
    copy = Outlines.from_dict(sent["outlines"], sent["ids"])
    rng = np.random.default_rng(23)
    # land, sea, and San Marino: the hole of the municipalities around it, outside every tract
    lats = np.append(rng.uniform(36.5, 47.0, 300), SAN_MARINO[0])
    lons = np.append(rng.uniform(6.5, 18.5, 300), SAN_MARINO[1])

    found = [copy.position_holding(lat, lon) for lat, lon in zip(lats, lons, strict=True)]

    assert found == municipalities.positions_for_points(lats, lons).tolist()
    assert found[-1] == -1 and sum(position >= 0 for position in found) > 50  # type: ignore[operator]
    # a point on a border (every vertex is one) is left to the polygons
    for vertex in rng.integers(0, len(copy.lons), 50).tolist():
        assert copy.position_holding(copy.lats[vertex], copy.lons[vertex]) is None


def test_distances_are_shown_to_the_metre() -> None:
    assert metre_km(np.array([0.0, 1.23449, 1.2345001, 49.9996])).tolist() == [
        0.0,
        1.234,
        1.235,
        50.0,
    ]


def small_copy() -> dict[str, Any]:
    index = layer_of(box(9.0, 45.0, 9.5, 45.5), box(9.5, 45.0, 10.0, 45.5))
    return json.loads(json.dumps(index.replica()["outlines"]))


def repacked(field: str, dtype: str, change: Callable[[np.ndarray], np.ndarray]) -> Any:
    """A damage: `field` of the copy unpacked, changed, and packed again."""

    def damage(value: dict[str, Any]) -> None:
        length = {"count": 2}.get(field, 10)
        value[field] = pack(change(unpack(value[field], dtype, length)), dtype)

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda v: v.update(scale=1000), id="another scale"),
        pytest.param(lambda v: v.pop("lat"), id="no latitudes"),
        pytest.param(lambda v: v.update(lon="not base64!"), id="not base64"),
        pytest.param(lambda v: v.update(step=v["lon"]), id="steps of the wrong length"),
        pytest.param(repacked("count", "<i4", lambda c: c + [1, 0]), id="counts too many"),
        pytest.param(repacked("count", "<i4", lambda c: c * [-1, 3]), id="a negative count"),
        pytest.param(repacked("step", "<u1", lambda s: s + 1), id="a ring past its polygon"),
        pytest.param(repacked("step", "<u1", lambda s: s * 2), id="a step of 2"),
        pytest.param(repacked("lat", "<i8", lambda d: d + 10**9), id="beyond a pole"),
    ],
)
def test_a_damaged_copy_is_refused(damage: Callable[[dict[str, Any]], None]) -> None:
    value = small_copy()
    assert len(Outlines.from_dict(dict(value), ["T0", "T1"])) == 2
    damage(value)
    with pytest.raises(ValueError):
        Outlines.from_dict(value, ["T0", "T1"])


def test_geodesics_agree_with_karneys_algorithm_to_the_millimetre() -> None:
    rng = np.random.default_rng(23)
    for lat, lon in [(45.4642, 9.19), (0.0, 179.95), (-33.9, 18.4), (78.2, 15.6), (-89.0, 0.0)]:
        count = 3000
        lats = np.clip(lat + rng.uniform(-5, 5, count), -90, 90)
        lons = (lon + rng.uniform(-8, 8, count) + 180) % 360 - 180
        lats[:3], lons[:3] = (
            [lat, lat, 0.0],
            [lon, lon + 1.0, lon],
        )  # itself, a parallel, a meridian
        _, _, metres = GEOD.inv(np.full(count, lon), np.full(count, lat), lons, lats)
        assert np.abs(geodesic_km(lat, lon, lats, lons) - metres / 1000).max() < 1e-6
    assert geodesic_km(45.0, 9.0, [45.0], [9.0])[0] == 0.0


def test_nearly_antipodal_points_are_measured_too() -> None:
    lats, lons = np.array([-0.5, 0.0, 10.0]), np.array([179.7, 180.0, -170.0])
    _, _, metres = GEOD.inv(np.zeros(3), np.zeros(3), lons, lats)
    assert geodesic_km(0.0, 0.0, lats, lons) == pytest.approx(metres / 1000, abs=1e-6)


def test_a_tract_wider_than_a_quarter_of_the_globe_is_measured_right() -> None:
    # Beyond 45 degrees from the centre the projection keeps angles, not their sines.
    vast = shapely.segmentize(box(-100.0, -60.0, 100.0, 60.0), 1.0)
    index = layer_of(vast, box(150.0, 61.0, 151.0, 62.0))

    assert index.tracts_within_radius(10.0, 20.0, 50.0)[0].distance_km == 0.0
    hits = index.tracts_within_radius(62.0, 10.0, 300.0)
    assert [hit.tract.id for hit in hits] == ["T0"]
    assert hits[0].distance_km == pytest.approx(brute_km(vast, 62.0, 10.0), abs=0.06)


def test_boxes_within_reach_are_those_their_lower_bound_puts_there() -> None:
    # boxes_within_km skips the bound for boxes well inside the circle: the same answer.
    rng = np.random.default_rng(41)
    answers = []
    for lat, lon in [(45.46, 9.19), (0.0, 179.9), (-33.9, 18.4), (78.2, 15.6), (-89.9, 0.0)]:
        for km in (0.4, 5.0, 50.5, 505.0, 5000.0, 25000.0):
            spread = min(km / 111 * 1.5, 90)  # degrees: inside, around the edge and beyond
            west = (lon + rng.uniform(-spread, spread, 4000) + 180) % 360 - 180
            south = np.clip(lat + rng.uniform(-spread, spread, 4000), -90, 90)
            width, height = rng.uniform(0, spread / 4, (2, 4000))
            east, north = np.minimum(west + width, 180), np.minimum(south + height, 90)
            bounds = np.array([west, south, east, north])

            within = boxes_within_km(lat, lon, bounds, km)

            assert np.array_equal(within, box_distance_km(lat, lon, bounds) <= km)
            answers.append(within.mean())
    assert min(answers) < 0.5 < max(answers)


def test_over_a_dense_layer_hits_come_nearest_first_then_by_id(dense_city: TractIndex) -> None:
    west, south, east, north = dense_city.bounds
    rng = np.random.default_rng(43)
    for _ in range(40):
        lat, lon = float(rng.uniform(south, north)), float(rng.uniform(west, east))
        radius = float(rng.choice([0.5, 5.0, 30.0]))
        hits = dense_city.tracts_within_radius(lat, lon, radius)
        keys = [(hit.distance_km, hit.tract.id) for hit in hits]
        assert keys == sorted(set(keys)) and keys[-1][0] <= radius
        # zero for the tract holding the centre (the layer covers its box), and for no other
        assert [hit.tract for hit in hits if hit.distance_km == 0.0] == [
            dense_city.tract_for_point(lat, lon)
        ]


# The plain computation, each array expression written out as it was before radius queries were
# made faster: the fast paths must give its answers bit for bit (the tracts, their order and the
# distances), or a radius answer would change.


def plain_geodesic_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    flattening, axis = 1 / 298.257223563, 6378137.0
    minor = axis * (1 - flattening)
    u1 = math.atan((1 - flattening) * math.tan(math.radians(lat)))
    sin_u1, cos_u1 = math.sin(u1), math.cos(u1)
    u2 = np.arctan((1 - flattening) * np.tan(np.radians(lats)))
    sin_u2, cos_u2 = np.sin(u2), np.cos(u2)
    longitude = np.radians((lons - lon + 180.0) % 360.0 - 180.0)
    lam = longitude
    for _ in range(30):
        sin_lam, cos_lam = np.sin(lam), np.cos(lam)
        east = cos_u2 * sin_lam
        north = cos_u1 * sin_u2 - sin_u1 * cos_u2 * cos_lam
        sin_sigma = np.sqrt(east * east + north * north)
        cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_lam
        sigma = np.arctan2(sin_sigma, cos_sigma)
        sin_alpha = cos_u1 * cos_u2 * sin_lam / np.where(sin_sigma > 0, sin_sigma, 1.0)
        cos2_alpha = 1 - sin_alpha * sin_alpha
        meridian = cos2_alpha == 0
        cos_2sm = np.where(
            meridian,
            0.0,
            cos_sigma - 2 * (sin_u1 * sin_u2) / np.where(meridian, 1.0, cos2_alpha),
        )
        c = flattening / 16 * cos2_alpha * (4 + flattening * (4 - 3 * cos2_alpha))
        previous = lam
        lam = longitude + (1 - c) * flattening * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (2 * cos_2sm * cos_2sm - 1))
        )
        unsettled = np.abs(lam - previous) > 1e-12
        if not unsettled.any():
            break
    u2_sq = cos2_alpha * (axis**2 - minor**2) / minor**2
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
    metres = minor * a * (sigma - delta)
    if unsettled.any():
        count = int(unsettled.sum())
        _, _, exact = GEOD.inv(
            np.full(count, lon), np.full(count, lat), lons[unsettled], lats[unsettled]
        )
        metres[unsettled] = exact
    return metres / 1000.0


def plain_azimuthal(
    lat: float, lon: float, lats: np.ndarray, lons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    sin_phi0, cos_phi0 = math.sin(math.radians(lat)), math.cos(math.radians(lat))
    dlam = np.radians((lons - lon).astype(np.float32))
    dphi = np.radians((lats - lat).astype(np.float32))
    widest = np.abs(dlam).max(initial=0)
    if widest > math.pi:
        dlam = (dlam + np.float32(math.pi)) % np.float32(2 * math.pi) - np.float32(math.pi)
        widest = np.abs(dlam).max(initial=0)
    cos_phi = np.cos(dphi + np.float32(math.radians(lat)))
    versine = 2 * np.sin(dlam / 2) ** 2
    east = np.sin(dlam) * cos_phi
    north = np.sin(dphi) + np.float32(sin_phi0) * cos_phi * versine
    if max(widest, np.abs(dphi).max(initial=0)) <= math.pi / 4:
        return east, north
    cos_c = np.cos(dphi) - np.float32(cos_phi0) * cos_phi * versine
    sin_c = np.sqrt(east * east + north * north)
    scale = np.arctan2(sin_c, cos_c) / np.maximum(sin_c, np.float32(1e-30))
    return scale * east, scale * north


def plain_within_radius(
    outlines: Outlines, lat: float, lon: float, radius_km: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every box tested against the search boxes, the nearest point of each candidate by the
    edges' shares in the azimuthal plane, an argsort of the distances and ids."""
    west, south, east, north = outlines.bounds
    hit = np.zeros(len(outlines), dtype=bool)
    for box_west, box_south, box_east, box_north in search_boxes(lat, lon, radius_km):
        hit |= (west <= box_east) & (east >= box_west) & (south <= box_north) & (north >= box_south)
    candidates = np.flatnonzero(hit)
    candidates = candidates[
        box_distance_km(lat, lon, outlines.bounds[:, candidates]) <= radius_km * 1.01
    ]
    if len(candidates) == 0:
        return candidates, np.zeros(0)
    spans = [
        np.arange(outlines.first[position], outlines.first[position] + outlines.count[position])
        for position in candidates.tolist()
    ]
    vertex = np.concatenate(spans)
    x_all, y_all = plain_azimuthal(lat, lon, outlines.lats[vertex], outlines.lons[vertex])
    distances = np.zeros(len(candidates))
    start = 0
    for at, position in enumerate(candidates.tolist()):
        span = spans[at]
        x, y = x_all[start : start + len(span)], y_all[start : start + len(span)]
        start += len(span)
        lons, lats, step = outlines.lons[span], outlines.lats[span], outlines.step[span]
        ex, ey = np.zeros_like(x), np.zeros_like(y)
        ex[:-1], ey[:-1] = (x[1:] - x[:-1]) * step[:-1], (y[1:] - y[:-1]) * step[:-1]
        length2 = ex * ex + ey * ey
        t = np.clip(-(x * ex + y * ey) / np.where(length2 > 0, length2, np.float32(1)), 0, 1)
        squared = (x + t * ex) ** 2 + (y + t * ey) ** 2
        chosen = int(np.flatnonzero(squared == squared.min())[0])
        share = float(t[chosen])
        following = chosen + (share > 0)
        dlon = (lons[following] - lons[chosen] + 180.0) % 360.0 - 180.0
        near_lon = lons[chosen] + share * dlon
        near_lat = lats[chosen] + share * (lats[following] - lats[chosen])
        # holds the centre: its box does, and an odd number of its edges cross the plane's x axis
        box_west, box_south, box_east, box_north = outlines.bounds[:, position]
        if box_west <= lon <= box_east and box_south <= lat <= box_north:
            crossing = (y > 0) != (y + ey > 0)
            x0, y0, dx, dy = x[crossing], y[crossing], ex[crossing], ey[crossing]
            if np.count_nonzero(x0 - y0 * dx / dy > 0) % 2 == 1:
                continue  # 0
        distances[at] = plain_geodesic_km(lat, lon, np.array([near_lat]), np.array([near_lon]))[0]
    keep = np.flatnonzero(distances <= radius_km)
    shown = metre_km(distances[keep])
    order = np.lexsort((outlines.rank[candidates[keep]], shown))
    return candidates[keep[order]], shown[order]


def outlines_of(index: TractIndex) -> Outlines:
    sent = index.replica()
    return Outlines.from_dict(sent["outlines"], sent["ids"])


def test_geodesics_and_the_plane_are_the_plain_formulas_bit_for_bit() -> None:
    rng = np.random.default_rng(47)
    for lat, lon, spread in [(45.46, 9.19, 0.7), (0.0, 179.9, 1.0), (-60.0, 20.0, 80.0)]:
        lats = np.clip(lat + rng.uniform(-spread, spread, 3000), -90, 90)
        lons = (lon + rng.uniform(-spread, spread, 3000) + 180) % 360 - 180
        lats[:3], lons[:3] = lat, [lon, lon + 1.0, (lon + 180.0) % 360 - 180]  # on the equator
        lats[3:5], lons[3:5] = -lat + 0.01, (lon + 179.7 + 180) % 360 - 180  # nearly antipodal
        assert np.array_equal(
            geodesic_km(lat, lon, lats, lons), plain_geodesic_km(lat, lon, lats, lons)
        )
        # within 45 degrees (orthographic), and beyond (equidistant)
        for fast, plain in zip(
            azimuthal(lat, lon, lats, lons), plain_azimuthal(lat, lon, lats, lons), strict=True
        ):
            assert fast.dtype == plain.dtype and np.array_equal(fast, plain)


def test_radius_hits_over_a_dense_layer_are_those_of_the_plain_computation(
    dense_city: TractIndex,
) -> None:
    outlines = outlines_of(dense_city)
    west, south, east, north = dense_city.bounds
    rng = np.random.default_rng(53)
    for at in range(25):
        lat, lon = float(rng.uniform(south, north)), float(rng.uniform(west, east))
        radius = 100.0 if at == 0 else float(rng.choice([0.5, 5.0, 30.0]))  # beyond 65,536 m
        positions, distances = outlines.within_radius(lat, lon, radius)
        plain_positions, plain_distances = plain_within_radius(outlines, lat, lon, radius)
        assert np.array_equal(positions, plain_positions)
        assert np.array_equal(distances, plain_distances)
        assert distances.dtype == plain_distances.dtype == np.float64


def test_radius_hits_across_the_antimeridian_are_those_of_the_plain_computation() -> None:
    boxes = [
        box(179.0 + x / 5, y / 5, 179.2 + x / 5, 0.2 + y / 5) for x in range(5) for y in range(5)
    ]
    boxes += [
        box(-180.0 + x / 5, y / 5, -179.8 + x / 5, 0.2 + y / 5) for x in range(5) for y in range(5)
    ]
    boxes.append(box(-179.0, -20.0, -178.0, 20.0))  # a tall one
    outlines = outlines_of(layer_of(*boxes))
    for lat, lon, radius in [(0.5, 179.9, 60.0), (0.3, -179.95, 120.0), (0.1, 179.0, 300.0)]:
        positions, distances = outlines.within_radius(lat, lon, radius)
        plain_positions, plain_distances = plain_within_radius(outlines, lat, lon, radius)
        assert len(positions) > 10
        assert np.array_equal(positions, plain_positions)
        assert np.array_equal(distances, plain_distances)
