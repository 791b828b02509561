"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import shapely
from tests.faults.processes import claimed_redis_db

from tractcast.geo.index import TractIndex
from tractcast.geo.layers import Layer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "italy"


@pytest.fixture(scope="session")
def italy_dir() -> Path:
    """The real Italy data beside the project (../shared/data/italy)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"the shared Italy data is missing at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def italy_cases(italy_dir: Path) -> Path:
    return italy_dir / "cases_provinces.csv.gz"


@pytest.fixture(scope="session")
def italy_provinces(italy_dir: Path) -> Path:
    return italy_dir / "provinces.geojson"


@pytest.fixture(scope="module")
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of the machine's Redis that the test module has to itself for the run."""
    with claimed_redis_db(request.module.__name__) as url:
        yield url


@pytest.fixture(scope="session")
def dense_city() -> TractIndex:
    """2,500 Voronoi cells around random sites, half of them crowded around Milan's centre as
    census tracts are around a city's."""
    rng = np.random.default_rng(29)
    lons = np.concatenate([rng.normal(9.19, 0.15, 1250), rng.uniform(8.2, 10.2, 1250)])
    lats = np.concatenate([rng.normal(45.46, 0.1, 1250), rng.uniform(44.8, 46.1, 1250)])
    frame = shapely.box(8.2, 44.8, 10.2, 46.1)
    points = shapely.multipoints(np.column_stack([lons, lats]).clip((8.2, 44.8), (10.2, 46.1)))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(points)), frame)
    polygons = [cell for cell in cells if not cell.is_empty and cell.area > 0]
    properties = [{"code": f"C{n:05d}", "name": f"Cell {n}"} for n in range(len(polygons))]
    return TractIndex(Layer(polygons, properties, 0))
