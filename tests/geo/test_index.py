"""The tract index: reading every layer format, choosing fields, point and radius queries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fiona
import pytest
from pyproj import Transformer
from shapely.geometry import box, mapping

from tractcast.errors import InvalidInput, NotFound
from tractcast.geo.index import Tract, TractIndex

MILAN = (45.4642, 9.1900)
SEA = (40.0, 12.0)

# Three unit squares along the equator: Alpha [0,1], Beta [1,2], Gamma [2,3] in longitude.
SQUARES = [
    ({"tract_code": "001", "tract_name": "Alpha", "pop": 10}, box(0, 0, 1, 1)),
    ({"tract_code": "002", "tract_name": "Beta", "pop": 10}, box(1, 0, 2, 1)),
    ({"tract_code": "003", "tract_name": "Gamma", "pop": 30}, box(2, 0, 3, 1)),
]
SCHEMA = {
    "geometry": "Polygon",
    "properties": {"tract_code": "str", "tract_name": "str", "pop": "int"},
}


@pytest.fixture(scope="module")
def provinces(italy_provinces: Path) -> TractIndex:
    return TractIndex.from_file(italy_provinces)


def write_squares(path: Path, driver: str, crs: str = "EPSG:4326") -> Path:
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    records = []
    for props, square in SQUARES:
        ring = [to_crs.transform(x, y) for x, y in square.exterior.coords]
        records.append(
            {"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props}
        )
    with fiona.open(path, "w", driver=driver, crs=crs, schema=SCHEMA) as sink:
        sink.writerecords(records)
    return path


def write_topojson(path: Path) -> Path:
    topology = {
        "type": "Topology",
        "objects": {
            "tracts": {
                "type": "GeometryCollection",
                "geometries": [
                    {"type": "Polygon", "arcs": [[i]], "properties": props}
                    for i, (props, _) in enumerate(SQUARES)
                ],
            }
        },
        "arcs": [[list(xy) for xy in square.exterior.coords] for _, square in SQUARES],
    }
    path.write_text(json.dumps(topology))
    return path


def write_geojson(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def square_features() -> list[dict[str, Any]]:
    return [
        {"type": "Feature", "properties": props, "geometry": mapping(square)}
        for props, square in SQUARES
    ]


def test_milan_falls_in_the_province_of_milano(provinces: TractIndex) -> None:
    assert provinces.tract_for_point(*MILAN) == Tract("015", "Milano")


def test_provinces_choose_codice_provincia_and_prov_name(provinces: TractIndex) -> None:
    assert (provinces.id_field, provinces.name_field) == ("codice_provincia", "prov_name")
    assert len(provinces.tracts) == 107


def test_a_point_at_sea_is_in_no_tract(provinces: TractIndex) -> None:
    assert provinces.tract_for_point(*SEA) is None


def test_batch_lookup_answers_each_point_in_order(provinces: TractIndex) -> None:
    lats = [MILAN[0], SEA[0], 41.9028, MILAN[0]]
    lons = [MILAN[1], SEA[1], 12.4964, MILAN[1]]
    ids = [t.id if t else None for t in provinces.tracts_for_points(lats, lons)]
    assert ids == ["015", None, "058", "015"]


def test_batch_lookup_agrees_with_single_lookups(provinces: TractIndex) -> None:
    lats = [45.0 + 0.05 * i for i in range(40)]
    lons = [7.0 + 0.12 * i for i in range(40)]
    batch = provinces.tracts_for_points(lats, lons)
    assert batch == [
        provinces.tract_for_point(lat, lon) for lat, lon in zip(lats, lons, strict=True)
    ]


def test_radius_around_milan_holds_its_neighbours_nearest_first(provinces: TractIndex) -> None:
    hits = provinces.tracts_within_radius(*MILAN, 50.0)
    ids = [hit.tract.id for hit in hits]
    assert {"015", "108", "098", "018"} <= set(ids)
    assert hits[0].tract == Tract("015", "Milano") and hits[0].distance_km == 0.0
    distances = [hit.distance_km for hit in hits]
    assert distances == sorted(distances) and all(0 < d <= 50.0 for d in distances[1:])


def test_radius_distances_are_geodesic_kilometres(tmp_path: Path) -> None:
    index = TractIndex.from_file(write_geojson(tmp_path / "squares.geojson", square_features()))
    hits = index.tracts_within_radius(0.5, 0.5, 200.0)  # one degree of longitude is ~111.32 km
    assert [(hit.tract.id, round(hit.distance_km)) for hit in hits] == [
        ("001", 0),
        ("002", 56),
        ("003", 167),
    ]


def test_a_small_radius_keeps_only_the_tract_around_the_point(provinces: TractIndex) -> None:
    assert [hit.tract.id for hit in provinces.tracts_within_radius(*MILAN, 1.0)] == ["015"]


def test_outline_is_a_geojson_feature(provinces: TractIndex) -> None:
    feature = provinces.outline("015")
    assert feature["type"] == "Feature" and feature["id"] == "015"
    assert feature["properties"]["name"] == "Milano"
    assert feature["geometry"]["type"] in {"Polygon", "MultiPolygon"}


def test_outline_of_an_unknown_id_is_not_found(provinces: TractIndex) -> None:
    with pytest.raises(NotFound):
        provinces.outline("999")


def test_properties_follow_the_order_of_tracts(provinces: TractIndex) -> None:
    properties = provinces.properties()
    assert [p["codice_provincia"] for p in properties] == [t.id for t in provinces.tracts]
    assert properties[0]["sigla_provincia"] == "TO"


@pytest.mark.parametrize(
    ("filename", "driver", "crs"),
    [
        ("squares.shp", "ESRI Shapefile", "EPSG:4326"),
        ("squares.gpkg", "GPKG", "EPSG:4326"),
        ("squares.geojson", "GeoJSON", "EPSG:4326"),
        ("squares_mercator.shp", "ESRI Shapefile", "EPSG:3857"),
        ("squares_utm.gpkg", "GPKG", "EPSG:32631"),
    ],
)
def test_every_format_and_crs_maps_the_same_point_to_the_same_tract(
    tmp_path: Path, filename: str, driver: str, crs: str
) -> None:
    index = TractIndex.from_file(write_squares(tmp_path / filename, driver, crs))
    assert index.id_field == "tract_code" and index.name_field == "tract_name"
    assert index.tract_for_point(0.5, 1.5) == Tract("002", "Beta")
    assert index.tract_for_point(0.5, 3.5) is None


def test_a_hand_written_topojson_layer_is_read(tmp_path: Path) -> None:
    index = TractIndex.from_file(write_topojson(tmp_path / "squares.topojson"))
    assert index.tract_for_point(0.5, 2.5) == Tract("003", "Gamma")
    assert len(index.tracts) == 3


def test_a_gzipped_geojson_layer_is_read(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "squares.geojson.gz"
    path.write_bytes(
        gzip.compress(
            json.dumps({"type": "FeatureCollection", "features": square_features()}).encode()
        )
    )
    assert TractIndex.from_file(path).tract_for_point(0.5, 0.5) == Tract("001", "Alpha")


def test_empty_geometries_are_skipped_and_invalid_ones_repaired(tmp_path: Path) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[3, 0], [4, 1], [4, 0], [3, 1], [3, 0]]]}
    empty = {"type": "GeometryCollection", "geometries": []}
    features = [
        *square_features(),
        {
            "type": "Feature",
            "properties": {"tract_code": "004", "tract_name": "Bow"},
            "geometry": bowtie,
        },
        {
            "type": "Feature",
            "properties": {"tract_code": "105", "tract_name": "Gone"},
            "geometry": empty,
        },
    ]
    index = TractIndex.from_file(write_geojson(tmp_path / "mixed.geojson", features))
    assert [t.id for t in index.tracts] == ["001", "002", "003", "004"]
    assert index.skipped == 1
    assert index.tract_for_point(0.5, 3.2) == index.tract_for_point(0.5, 3.8) == Tract("004", "Bow")


def test_a_point_on_a_shared_border_goes_to_the_first_tract(tmp_path: Path) -> None:
    index = TractIndex.from_file(write_geojson(tmp_path / "squares.geojson", square_features()))
    assert index.tract_for_point(0.5, 1.0) == Tract("001", "Alpha")
    assert index.tracts_for_points([0.5, 0.5], [2.0, 1.0]) == [
        Tract("002", "Beta"),
        Tract("001", "Alpha"),
    ]


def test_an_id_field_override_is_used(tmp_path: Path) -> None:
    index = TractIndex.from_file(
        write_geojson(tmp_path / "squares.geojson", square_features()), id_field="tract_name"
    )
    assert index.id_field == "tract_name"
    assert index.tract_for_point(0.5, 0.5) == Tract("Alpha", "Alpha")


def test_the_provinces_accept_sigla_provincia_as_id(italy_provinces: Path) -> None:
    index = TractIndex.from_file(italy_provinces, id_field="sigla_provincia")
    assert index.tract_for_point(*MILAN) == Tract("MI", "Milano")


def test_an_unknown_id_field_lists_the_available_properties(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "squares.geojson", square_features())
    with pytest.raises(InvalidInput, match="'nope' is not a property.*tract_code, tract_name, pop"):
        TractIndex.from_file(path, id_field="nope")


def test_a_repeated_id_field_is_rejected(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "squares.geojson", square_features())
    with pytest.raises(InvalidInput, match="'pop' is not unique: '10'"):
        TractIndex.from_file(path, id_field="pop")


def test_a_missing_layer_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        TractIndex.from_file(tmp_path / "absent.geojson")


def test_municipalities_choose_the_istat_code_and_name(italy_dir: Path) -> None:
    index = TractIndex.from_file(italy_dir / "municipalities.geojson.gz")
    assert (index.id_field, index.name_field, len(index.tracts)) == ("com_istat_code", "name", 7899)
    assert index.tract_for_point(*MILAN) == Tract("015146", "Milano")
    hits = index.tracts_within_radius(*MILAN, 50.0)
    assert hits[0].tract.id == "015146" and max(hit.distance_km for hit in hits) <= 50.0
