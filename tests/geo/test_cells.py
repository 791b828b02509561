"""The lookup grid answers exactly what the polygons answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import box, mapping

from tractcast.geo.cells import BORDER, CellAnswers, GridSpec
from tractcast.geo.index import NO_TRACT, Tract, TractIndex


@pytest.fixture(scope="module")
def municipalities(italy_dir: Path) -> TractIndex:
    return TractIndex.from_file(italy_dir / "municipalities.geojson.gz")


def containing(index: TractIndex, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """The answer worked out without the index: every polygon tested, first one wins."""
    points = shapely.points(np.column_stack((lons, lats)))
    tree = shapely.STRtree(index.geometries)
    point_idx, tract_idx = tree.query(points, predicate="intersects")
    answer = np.full(len(lats), len(index), dtype=np.int64)
    np.minimum.at(answer, point_idx, tract_idx)
    answer[answer == len(index)] = NO_TRACT
    return answer


def test_a_batch_gets_the_same_tracts_as_testing_every_polygon(
    municipalities: TractIndex,
) -> None:
    west, south, east, north = municipalities.bounds
    rng = np.random.default_rng(7)
    lats, lons = rng.uniform(south, north, 200_000), rng.uniform(west, east, 200_000)
    # Points on the layer's vertices lie on borders: the hardest case for a grid.
    vertices = shapely.get_coordinates(municipalities.geometries[:300])[::7]
    lats = np.concatenate([lats, vertices[:, 1], [south, north, north]])
    lons = np.concatenate([lons, vertices[:, 0], [west, east, west]])

    answer = municipalities.positions_for_points(lats, lons)

    assert np.array_equal(answer, containing(municipalities, lats, lons))
    assert (answer != NO_TRACT).sum() > 40_000


def test_single_lookups_agree_with_the_batch(municipalities: TractIndex) -> None:
    rng = np.random.default_rng(3)
    lats, lons = rng.uniform(44.0, 46.5, 500), rng.uniform(7.0, 12.0, 500)
    batch = municipalities.tracts_for_points(lats, lons)
    assert [municipalities.tract_for_point(a, o) for a, o in zip(lats, lons, strict=True)] == batch


def test_a_cell_given_with_an_answer_holds_that_answer_everywhere(
    municipalities: TractIndex,
) -> None:
    grid = municipalities.grid
    tract, cell = municipalities.lookup(45.4642, 9.19)
    assert tract == Tract("015146", "Milano") and cell is not None
    row, col = divmod(cell, grid.nx)
    rng = np.random.default_rng(1)
    lats = grid.south + (row + rng.uniform(0, 1, 1000)) * grid.dy
    lons = grid.west + (col + rng.uniform(0, 1, 1000)) * grid.dx
    assert set(municipalities.tracts_for_points(lats, lons)) == {tract}


def test_a_point_near_a_border_comes_without_a_cell(tmp_path: Path) -> None:
    index = squares(tmp_path)
    tract, cell = index.lookup(0.5, 0.999999)  # Alpha, a hair from Beta
    assert tract == Tract("001", "Alpha") and cell is None
    assert index.lookup(0.5, 1.0)[0] == Tract("001", "Alpha")  # on the border: the first tract
    assert index.lookup(0.5, 0.5)[1] is not None


def test_points_outside_the_grid_are_outside_every_tract(tmp_path: Path) -> None:
    index = squares(tmp_path)
    assert index.tracts_for_points([0.5, 1.5, -0.1, 0.5], [-0.1, 0.5, 0.5, 3.1]) == [None] * 4
    assert index.lookup(2.0, 0.5) == (None, None)


def test_a_grid_spec_travels_as_a_list_and_refuses_a_broken_one() -> None:
    spec = GridSpec(9.0, 45.3, 0.1, 0.1, 4, 3)
    assert GridSpec.from_list(spec.to_list()) == spec
    assert spec.cell(45.35, 9.05) == 0 and spec.cell(45.59, 9.39) == 11
    assert spec.cell(45.2, 9.05) is None
    with pytest.raises(ValueError):
        GridSpec.from_list([9.0, 45.3, 0.0, 0.1, 4, 3])


def test_the_grid_sent_to_clients_answers_as_the_polygons_do_off_borders(
    municipalities: TractIndex,
) -> None:
    sent = json.loads(json.dumps(municipalities.replica()))
    answers = CellAnswers.from_dict(sent)
    west, south, east, north = municipalities.bounds
    rng = np.random.default_rng(11)
    lats, lons = (
        rng.uniform(south - 1, north + 1, 100_000),
        rng.uniform(west - 1, east + 1, 100_000),
    )

    copied = answers.positions(lats, lons)

    known = copied != BORDER
    assert known.mean() > 0.9  # a client answers most points itself
    assert np.array_equal(copied[known], containing(municipalities, lats[known], lons[known]))
    assert sent["ids"][int(copied[known].max())] in {t.id for t in municipalities.tracts}
    assert len(sent["cells"]) < 1_000_000  # 4 million cells travel as a few hundred kB


@pytest.mark.parametrize(
    "damage",
    [
        lambda grid: grid.update(cells=grid["cells"][:-12]),
        lambda grid: grid.update(cells="not base64!"),
        lambda grid: grid.update(grid=[9.0, 45.3, 0.1, 0.1, 4, 4]),
        lambda grid: grid.update(dtype=">f8"),
        lambda grid: grid.pop("cells"),
    ],
)
def test_a_damaged_cell_table_is_refused(damage: object) -> None:
    grid = CellAnswers(GridSpec(9.0, 45.3, 0.1, 0.1, 4, 3), np.arange(12, dtype=np.int16)).to_dict()
    assert np.array_equal(CellAnswers.from_dict(dict(grid)).cells, np.arange(12))
    damage(grid)  # type: ignore[operator]
    with pytest.raises(ValueError):
        CellAnswers.from_dict(grid)


def squares(tmp_path: Path) -> TractIndex:
    features = [
        {
            "type": "Feature",
            "properties": {"code": f"00{i + 1}", "name": name},
            "geometry": mapping(box(i, 0, i + 1, 1)),
        }
        for i, name in enumerate(["Alpha", "Beta", "Gamma"])
    ]
    path = tmp_path / "squares.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return TractIndex.from_file(path)
