"""Read a tract layer with Fiona into valid WGS84 polygons and their properties.

Fiona (with GDAL and boto3) and pyproj are imported when a layer is read, not with this module:
the API imports the geo modules for their types and never reads a layer (about 60 MB a worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from tractcast.errors import InvalidInput

if TYPE_CHECKING:
    from pyproj import CRS
POLYGONAL_TYPES = {"Polygon", "MultiPolygon", "3D Polygon", "3D MultiPolygon", "Unknown"}


@dataclass(frozen=True)
class Layer:
    """Non-empty polygonal geometries in WGS84 (lon, lat) and each feature's properties."""

    geometries: list[BaseGeometry]
    properties: list[dict[str, Any]]
    skipped: int  # features dropped because their geometry was empty or not polygonal


def gdal_path(path: str | Path) -> str:
    """The path GDAL opens: gzip and zip archives go through /vsigzip/ and /vsizip/."""
    text = str(path)
    if text.startswith("/vsi"):
        return text
    if text.lower().endswith(".gz"):
        return f"/vsigzip/{Path(text).resolve()}"
    if text.lower().endswith(".zip"):
        return f"/vsizip/{Path(text).resolve()}"
    return text


def read_layer(path: str | Path, layer_name: str | None = None) -> Layer:
    """Read GeoJSON, TopoJSON, Shapefile or GeoPackage; reproject to WGS84; repair geometry.

    `layer_name` picks one of a GeoPackage's layers (default: its first polygon layer)."""
    if not str(path).startswith("/vsi") and not Path(path).exists():
        raise InvalidInput(f"the tract layer file does not exist: {path}")
    import fiona
    from fiona.errors import FionaError

    source = gdal_path(path)
    try:
        name = layer_name or polygon_layer_name(source)
        with fiona.open(source, layer=name) as collection:
            crs = layer_crs(collection.crs)
            raw = [(feature.geometry, dict(feature.properties)) for feature in collection]
    except FionaError as exc:
        raise InvalidInput(f"cannot read the tract layer {path}: {exc}") from exc
    return build_layer(raw, crs)


def polygon_layer_name(source: str) -> str | None:
    """The first layer whose geometry type can hold polygons (GeoPackages may hold several)."""
    import fiona

    names = fiona.listlayers(source)
    if len(names) <= 1:
        return None
    for name in names:
        with fiona.open(source, layer=name) as collection:
            if collection.schema.get("geometry") in POLYGONAL_TYPES:
                return name
    return names[0]


def layer_crs(crs: Any) -> CRS:
    """The layer's CRS as pyproj; a layer without one is taken as WGS84 (the GeoJSON rule)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if not crs:
        return wgs84()
    try:
        return CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    except CRSError as exc:
        raise InvalidInput(f"the tract layer has a CRS pyproj cannot read: {exc}") from exc


def build_layer(raw: list[tuple[Any, dict[str, Any]]], crs: CRS) -> Layer:
    """Turn (geometry, properties) pairs into a Layer, skipping empty and non-polygonal shapes."""
    shapes = np.array([to_shapely(geometry) for geometry, _ in raw], dtype=object)
    if len(shapes) and not is_wgs84(crs):
        shapes = to_wgs84(shapes, crs)
    geometries: list[BaseGeometry] = []
    properties: list[dict[str, Any]] = []
    for geometry, (_, props) in zip(shapes, raw, strict=True):
        polygon = polygonal_part(geometry)
        if polygon is None:
            continue
        geometries.append(polygon)
        properties.append(props)
    return Layer(geometries, properties, skipped=len(raw) - len(geometries))


@cache
def wgs84() -> CRS:
    """EPSG:4326, the CRS every layer is read into."""
    from pyproj import CRS

    return CRS.from_epsg(4326)


def to_shapely(geometry: Any) -> BaseGeometry | None:
    return None if geometry is None else shape(geometry)


def is_wgs84(crs: CRS) -> bool:
    return crs.equals(wgs84(), ignore_axis_order=True) or crs.to_epsg() == 4326


def to_wgs84(shapes: np.ndarray, crs: CRS) -> np.ndarray:
    """Reproject every coordinate to EPSG:4326 as (lon, lat)."""
    from pyproj import Transformer

    transformer = Transformer.from_crs(crs, wgs84(), always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))

    present = np.array([geometry is not None for geometry in shapes], dtype=bool)
    projected = shapes.copy()
    projected[present] = shapely.transform(shapes[present], project)
    return projected


def polygonal_part(geometry: BaseGeometry | None) -> BaseGeometry | None:
    """The valid polygonal part of a geometry, or None when nothing polygonal remains."""
    if geometry is None or geometry.is_empty:
        return None
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    if geometry.geom_type in {"Polygon", "MultiPolygon"}:
        return geometry
    parts = [
        part
        for part in shapely.get_parts(geometry)
        if part.geom_type in {"Polygon", "MultiPolygon"}
    ]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return None if merged.is_empty else merged
