"""Batch point -> tract on the municipality layer: TractIndex against PostGIS, same answers.

Loads the 7,899 Italian municipality polygons and N random points in the layer's bounding box
into a scratch database (created, then dropped), indexes both with GiST, and times
`ST_Contains` joined over every point against `TractIndex.positions_for_points` on the same
points. Every point must get the same tract from both (a point on a border, where ST_Contains
and the index's border rule differ, is counted and excluded; random points almost never are).

Needs PostgreSQL with PostGIS 3 on 127.0.0.1:5432 (`apt-get install postgresql-15-postgis-3`).
    .venv/bin/python -m bench.postgis [--points 1000000] [--dsn "host=127.0.0.1 user=postgres"]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import psycopg2
import shapely

from bench.geo import MUNICIPALITIES, load_index, random_points
from tractcast.geo.index import NO_TRACT, TractIndex

SCRATCH_DB = "tractcast_bench"
JOIN = """
    SELECT p.id, min(t.pos)
    FROM bench_points p JOIN bench_tracts t ON ST_Contains(t.geom, p.geom)
    GROUP BY p.id
"""


@contextmanager
def scratch_database(dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A fresh database with PostGIS, dropped afterwards whatever happens."""
    admin = psycopg2.connect(f"{dsn} dbname=postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
            cur.execute(f"CREATE DATABASE {SCRATCH_DB}")
        conn = psycopg2.connect(f"{dsn} dbname={SCRATCH_DB}")
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE EXTENSION postgis")
            conn.commit()
            yield conn
        finally:
            conn.close()
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
    finally:
        admin.close()


def copy_geometries(conn, table: str, geometries: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """COPY (row number, geometry) rows in as hex EWKB with SRID 4326."""
    ewkb = shapely.to_wkb(shapely.set_srid(geometries, 4326), hex=True, include_srid=True)
    text = "".join(f"{i}\t{wkb}\n" for i, wkb in enumerate(ewkb.tolist()))
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} (id, geom) FROM STDIN", io.StringIO(text))


def load_postgis(conn, index: TractIndex, lats: np.ndarray, lons: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """Tables, rows and GiST indexes; returns the seconds spent building the indexes."""
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_tracts (id integer PRIMARY KEY, geom geometry(Geometry, 4326))"
        )
        cur.execute(
            "CREATE TABLE bench_points (id integer PRIMARY KEY, geom geometry(Point, 4326))"
        )
    copy_geometries(conn, "bench_tracts", index.geometries)
    copy_geometries(conn, "bench_points", shapely.points(np.column_stack((lons, lats))))
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE bench_tracts RENAME COLUMN id TO pos")
        cur.execute("CREATE INDEX ON bench_tracts USING gist (geom)")
        cur.execute("CREATE INDEX ON bench_points USING gist (geom)")
        cur.execute("ANALYZE bench_tracts")
        cur.execute("ANALYZE bench_points")
    conn.commit()
    return time.perf_counter() - started


def postgis_positions(conn, count: int) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    """Each point's tract position by the ST_Contains join (NO_TRACT when none), and seconds."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(JOIN)
        rows = cur.fetchall()
    seconds = time.perf_counter() - started
    positions = np.full(count, NO_TRACT, dtype=np.int64)
    if rows:
        pairs = np.asarray(rows, dtype=np.int64)
        positions[pairs[:, 0]] = pairs[:, 1]
    return positions, seconds


def index_positions(
    index: TractIndex, lats: np.ndarray, lons: np.ndarray, repeat: int
) -> tuple[np.ndarray, float]:
    """The index's answer and its best time over `repeat` runs."""
    best = float("inf")
    positions = np.zeros(0, dtype=np.int64)
    for _ in range(repeat):
        started = time.perf_counter()
        positions = index.positions_for_points(lats, lons)
        best = min(best, time.perf_counter() - started)
    return positions, best


def on_a_border(
    index: TractIndex, lats: np.ndarray, lons: np.ndarray, positions: np.ndarray
) -> np.ndarray:
    """Which points lie on the boundary of the tract they were given (ST_Contains says no)."""
    points = shapely.points(np.column_stack((lons, lats)))
    found = positions != NO_TRACT
    border = np.zeros(len(lats), dtype=bool)
    border[found] = shapely.touches(index.geometries[positions[found]], points[found])
    return border


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--repeat", type=int, default=3, help="index runs (best is kept)")
    args = parser.parse_args()

    index = load_index(MUNICIPALITIES)
    lats, lons = random_points(index, args.points, seed=0)
    ours, ours_s = index_positions(index, lats, lons, args.repeat)
    with scratch_database(args.dsn) as conn:
        index_s = load_postgis(conn, index, lats, lons)
        with conn.cursor() as cur:
            cur.execute("SELECT postgis_lib_version()")
            postgis_version = cur.fetchone()[0]
        theirs, theirs_s = postgis_positions(conn, args.points)

    differ = ours != theirs
    border = on_a_border(index, lats[differ], lons[differ], ours[differ])
    unexplained = int(differ.sum() - border.sum())
    inside = int((ours != NO_TRACT).sum())
    print(f"{args.points:,} random points in the bounding box of {len(index):,} municipalities")
    print(f"({inside:,} inside a municipality); timings taken on a shared machine, under load")
    print(f"  PostGIS {postgis_version} ST_Contains join, GiST on both: {theirs_s:8.2f} s")
    print(f"    (GiST index build, not counted: {index_s:.1f} s)")
    print(f"  TractIndex.positions_for_points (best of {args.repeat}):       {ours_s:8.2f} s")
    print(f"  speed-up: {theirs_s / ours_s:.1f}x")
    print(
        f"  same answer for every point: {unexplained == 0} (on a border, excluded: {len(border)})"
    )
    if unexplained:
        raise SystemExit(f"{unexplained} points got a different tract from PostGIS")


if __name__ == "__main__":
    main()
