"""A lookup grid over a tract layer: most points find their tract with one array read.

The layer's bounding box is cut into cells. A cell that no tract border touches lies wholly
inside the same tracts (or wholly outside every tract), so it stores the answer for every point
in it. Only points in cells a border touches go through the exact point-in-polygon test, so a
batch costs a few array operations plus the exact test for a small share of its points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from tractcast.geo.packing import pack, unpack

NO_TRACT = -1
BORDER = -2  # the cell meets a border: ask the exact test
# Slack, in cells, added around every border segment when marking the cells it touches. Far
# above the rounding error of computing a cell from a coordinate, so a border lying within
# rounding distance of a cell still marks it, and an unmarked cell is truly border-free.
SLACK = 1e-9
MAX_CELLS = 4_000_000  # 8 MB of int16 per process for layers under 32,767 tracts
CELLS_PER_TRACT = 20_000  # small layers get fine cells too: fewer points near a border

ExactPositions = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GridSpec:
    """Where the cells are: `nx` by `ny` cells of `dx` by `dy` degrees from (west, south).

    `cell` is the one definition of which cell a point falls in, shared by the geo service and
    the API's geo client, so both compute the same cell for the same point, bit for bit.
    """

    west: float
    south: float
    dx: float
    dy: float
    nx: int
    ny: int

    def cell(self, lat: float, lon: float) -> int | None:
        """The flat index (row * nx + col) of the point's cell; None outside the grid."""
        col = (lon - self.west) / self.dx
        row = (lat - self.south) / self.dy
        if not (0 <= col <= self.nx and 0 <= row <= self.ny):
            return None
        return min(int(row), self.ny - 1) * self.nx + min(int(col), self.nx - 1)

    def to_list(self) -> list[float]:
        return [self.west, self.south, self.dx, self.dy, self.nx, self.ny]

    @classmethod
    def from_list(cls, values: list[float]) -> GridSpec:
        west, south, dx, dy, nx, ny = values
        if not (dx > 0 and dy > 0 and int(nx) == nx >= 1 and int(ny) == ny >= 1):
            raise ValueError(f"not a grid: {values!r}")
        return cls(float(west), float(south), float(dx), float(dy), int(nx), int(ny))


class CellAnswers:
    """The answer of every cell of a grid: a tract position, NO_TRACT, or BORDER.

    What a CellGrid knows without its polygons: the geo service sends it (`to_dict`) to the
    API, which then answers any point of a border-free cell with one array read, and asks geo
    only about points where a border passes.
    """

    def __init__(self, spec: GridSpec, cells: np.ndarray) -> None:
        if cells.shape != (spec.nx * spec.ny,):
            raise ValueError(f"{cells.shape} cells for a {spec.nx} x {spec.ny} grid")
        self.spec = spec
        self.cells = cells
        self.cells.flags.writeable = False

    def position(self, lat: float, lon: float) -> tuple[int, int | None]:
        """The answer for one point and its cell (None outside the grid), in plain Python: a
        single lookup skips numpy's per-call overhead."""
        cell = self.spec.cell(lat, lon)
        return (NO_TRACT, None) if cell is None else (int(self.cells[cell]), cell)

    def positions(self, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
        """The answer for each point: BORDER where only the exact test can tell."""
        spec = self.spec
        col = (lons - spec.west) / spec.dx
        row = (lats - spec.south) / spec.dy
        within = (col >= 0) & (col <= spec.nx) & (row >= 0) & (row <= spec.ny)
        flat = np.minimum(row[within].astype(np.int64), spec.ny - 1) * spec.nx
        flat += np.minimum(col[within].astype(np.int64), spec.nx - 1)
        positions = np.full(lats.shape, NO_TRACT, dtype=np.int64)
        positions[within] = self.cells[flat]
        return positions

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the grid, and the cells packed (long runs of one tract make a few hundred
        kB of a million cells)."""
        dtype = self.cells.dtype.newbyteorder("<").str
        return {"grid": self.spec.to_list(), "dtype": dtype, "cells": pack(self.cells, dtype)}

    @classmethod
    def from_dict(cls, value: Any) -> CellAnswers:
        """Inverse of to_dict; ValueError when the value is not one."""
        try:
            spec = GridSpec.from_list(value["grid"])
            dtype = value["dtype"]
            if dtype not in ("<i2", "<i4"):
                raise ValueError(f"cells must be little-endian int16 or int32, not {dtype!r}")
            cells = unpack(value["cells"], dtype, spec.nx * spec.ny)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"not a cell table: {exc}") from exc
        return cls(spec, cells)


class CellGrid:
    """Tract position per cell (NO_TRACT outside every tract, BORDER where a border passes)."""

    def __init__(self, geometries: np.ndarray, exact: ExactPositions, max_cells: int = MAX_CELLS):
        """Build the grid of `geometries`; `exact(lats, lons)` answers points exactly."""
        self._exact = exact
        west, south, east, north = (float(v) for v in shapely.total_bounds(geometries))
        cells = min(max_cells, max(65_536, CELLS_PER_TRACT * len(geometries)))
        size = math.sqrt(max(east - west, 1e-9) * max(north - south, 1e-9) / cells)
        nx = max(1, math.ceil((east - west) / size))
        ny = max(1, math.ceil((north - south) / size))
        self.spec = GridSpec(
            west, south, max(east - west, 1e-12) / nx, max(north - south, 1e-12) / ny, nx, ny
        )
        self.nx, self.ny, self.west, self.south = nx, ny, west, south
        self.dx, self.dy = self.spec.dx, self.spec.dy
        dtype = np.int16 if len(geometries) < np.iinfo(np.int16).max else np.int32
        border = self._border_cells(geometries)
        self.answers = CellAnswers(self.spec, self._fill_border_free_runs(border).astype(dtype))

    @property
    def shape(self) -> tuple[int, int]:
        return self.ny, self.nx

    def border_share(self) -> float:
        """Share of cells a border touches (the points falling there need the exact test)."""
        cells = self.answers.cells
        return float(np.count_nonzero(cells == BORDER)) / cells.size

    def position(self, lat: float, lon: float) -> tuple[int, int | None]:
        """positions() for one point, with the point's cell when no border crosses it (every
        point there has this answer)."""
        value, cell = self.answers.position(lat, lon)
        if value == BORDER:
            return int(self._exact(np.array([lat]), np.array([lon]))[0]), None
        return value, cell

    def positions(self, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
        """Tract position of each point, NO_TRACT for points outside every tract."""
        positions = self.answers.positions(lats, lons)
        exact = np.flatnonzero(positions == BORDER)
        if exact.size:
            positions[exact] = self._exact(lats[exact], lons[exact])
        return positions

    def _border_cells(self, geometries: np.ndarray) -> np.ndarray:
        """Flat mask of the cells any polygon ring touches."""
        parts = shapely.get_parts(geometries)
        rings = shapely.get_rings(parts)
        # Cut every ring into pieces shorter than a cell: each piece then touches at most a
        # 2 x 2 block of cells (3 x 3 with the slack), marked below without any geometry test.
        pieces = shapely.segmentize(rings, 0.99 * min(self.dx, self.dy))
        xy, ring = shapely.get_coordinates(pieces, return_index=True)
        same_ring = ring[1:] == ring[:-1]
        start, end = xy[:-1][same_ring], xy[1:][same_ring]
        col0 = self._index((np.minimum(start[:, 0], end[:, 0]) - self.west) / self.dx - SLACK)
        col1 = self._index((np.maximum(start[:, 0], end[:, 0]) - self.west) / self.dx + SLACK)
        row0 = self._index((np.minimum(start[:, 1], end[:, 1]) - self.south) / self.dy - SLACK)
        row1 = self._index((np.maximum(start[:, 1], end[:, 1]) - self.south) / self.dy + SLACK)
        col1, row1 = np.minimum(col1, self.nx - 1), np.minimum(row1, self.ny - 1)
        col0, row0 = np.minimum(col0, col1), np.minimum(row0, row1)
        border = np.zeros(self.nx * self.ny, dtype=bool)
        for step_row in range(3):
            for step_col in range(3):
                ok = (row0 + step_row <= row1) & (col0 + step_col <= col1)
                border[(row0[ok] + step_row) * self.nx + col0[ok] + step_col] = True
        return border

    def _fill_border_free_runs(self, border: np.ndarray) -> np.ndarray:
        """Cell answers: BORDER where marked, else the exact answer at the centre of its run.

        Neighbouring border-free cells in a row share an edge no border touches, so the whole
        run lies in the same tracts: one exact test per run answers all its cells.
        """
        grid = border.reshape(self.ny, self.nx)
        starts = np.ones_like(grid)
        starts[:, 1:] = grid[:, :-1]
        starts &= ~grid
        first = np.flatnonzero(starts)
        rows, cols = np.divmod(first, self.nx)
        answers = self._exact(
            self.south + (rows + 0.5) * self.dy, self.west + (cols + 0.5) * self.dx
        )
        run = np.maximum(np.cumsum(starts.ravel()) - 1, 0)
        cells = answers[run] if answers.size else np.full(border.size, NO_TRACT)
        return np.where(border, BORDER, cells)

    @staticmethod
    def _index(value: np.ndarray) -> np.ndarray:
        return np.maximum(np.floor(value), 0).astype(np.int64)
