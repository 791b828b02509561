"""Which served layer answers a point: the finest holding it, whatever the layers file's order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shapely.geometry import box

from tractcast.geo.cells import BORDER
from tractcast.geo.client import GeoClient, LayerReplica
from tractcast.geo.index import Tract, TractIndex
from tractcast.geo.layers import Layer
from tractcast.registry.store import RegistryReader
from tractcast.serving.holder import BundleHolder
from tractcast.serving.layers import ServedLayer, ServedLayers

# Two provinces one degree wide; two municipalities of 0.2 degrees inside the first.
PROVINCES = {"P1": box(9.0, 45.0, 10.0, 46.0), "P2": box(10.0, 45.0, 11.0, 46.0)}
MUNICIPALITIES = {"M1": box(9.2, 45.2, 9.4, 45.4), "M2": box(9.6, 45.6, 9.8, 45.8)}
IN_M1 = (45.31, 9.31)
IN_M2 = (45.71, 9.69)
IN_P1_ONLY = (45.81, 9.11)
IN_P2 = (45.51, 10.51)
SEA = (43.0, 5.0)


def index_of(polygons: dict[str, Any]) -> TractIndex:
    properties = [{"code": code, "name": code} for code in polygons]
    return TractIndex(Layer(list(polygons.values()), properties, 0), "code")


def geo_holding(index: TractIndex, without_areas: bool = False) -> GeoClient:
    """A client whose copy of geo's layer is the one geo renders from `index`, as if fetched;
    nothing listens at its URL, so every answer comes from the copy."""
    body = index.replica()
    if without_areas:  # what a geo older than its clients sends
        del body["areas_km2"]
    replica = LayerReplica(ttl=3600)
    assert replica.begin_refresh()
    replica.replace(body, "etag")
    replica.end_refresh(True)
    return GeoClient("http://127.0.0.1:9", timeout=0.5, replica=replica)


@pytest.fixture
def indexes() -> dict[str, TractIndex]:
    return {"provinces": index_of(PROVINCES), "municipalities": index_of(MUNICIPALITIES)}


def served(
    tmp_path: Path, indexes: dict[str, TractIndex], order: list[str], **geo: Any
) -> Iterator[ServedLayers]:
    clients = {name: geo_holding(indexes[name], **geo) for name in order}
    holder = BundleHolder(RegistryReader(tmp_path))
    yield ServedLayers([ServedLayer(name, holder, clients[name]) for name in order], named=True)
    for client in clients.values():
        client.close()


@pytest.fixture
def coarse_first(tmp_path: Path, indexes: dict[str, TractIndex]) -> Iterator[ServedLayers]:
    yield from served(tmp_path, indexes, ["provinces", "municipalities"])


@pytest.fixture
def fine_first(tmp_path: Path, indexes: dict[str, TractIndex]) -> Iterator[ServedLayers]:
    yield from served(tmp_path, indexes, ["municipalities", "provinces"])


def test_the_points_lie_where_the_copies_answer_without_geo(
    indexes: dict[str, TractIndex],
) -> None:
    lats, lons = np.array([IN_M1, IN_M2, IN_P1_ONLY, IN_P2, SEA]).T
    for index in indexes.values():
        copy = geo_holding(index).replica.copy
        assert copy is not None
        assert BORDER not in copy.answers.positions(lats, lons).tolist()


def test_a_coarse_layer_listed_first_still_leaves_a_point_to_the_fine_one(
    coarse_first: ServedLayers,
) -> None:
    layer, tract = coarse_first.holding(*IN_M1)

    assert (layer.name, tract) == ("municipalities", Tract("M1", "M1"))
    assert coarse_first.first.name == "provinces"  # what names no point still gets the first


@pytest.mark.parametrize("layers", ["coarse_first", "fine_first"])
def test_each_point_is_answered_by_the_smallest_tract_holding_it(
    layers: str, request: pytest.FixtureRequest
) -> None:
    served_layers: ServedLayers = request.getfixturevalue(layers)
    expected = [
        ("municipalities", "M1"),
        ("municipalities", "M2"),
        ("provinces", "P1"),
        ("provinces", "P2"),
    ]
    points = [IN_M1, IN_M2, IN_P1_ONLY, IN_P2]

    singles = [served_layers.holding(*point) for point in points]
    batch = served_layers.holding_points(points)

    for found in (singles, batch):
        assert [(layer.name, tract.id if tract else None) for layer, tract in found] == expected


def test_a_point_outside_every_layer_goes_to_the_first_with_no_tract(
    coarse_first: ServedLayers,
) -> None:
    assert coarse_first.holding(*SEA) == (coarse_first.first, None)
    assert coarse_first.holding_points([SEA, IN_M1])[0] == (coarse_first.first, None)


def test_geo_sends_each_tracts_area_in_km2(indexes: dict[str, TractIndex]) -> None:
    replica = geo_holding(indexes["provinces"]).replica
    area = replica.tract_area_km2(Tract("P1", "P1"))

    assert 8_600 < area < 8_900  # 1 x 1 degree at 45.5 N: 111.2 km x 78.0 km
    assert replica.tract_area_km2(Tract("P9", "P9")) == float("inf")


def test_without_areas_from_geo_the_files_order_decides(
    tmp_path: Path, indexes: dict[str, TractIndex]
) -> None:
    for order in (["provinces", "municipalities"], ["municipalities", "provinces"]):
        layers = next(served(tmp_path, indexes, order, without_areas=True))

        assert layers.holding(*IN_M1)[0].name == order[0]
