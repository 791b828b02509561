"""Geo speed on the 7,899 Italian municipalities: batches of points, 50 km radius queries.

Times the core index (what the geo service calls) and the geo service's own handling of the
same requests (Flask in-process: parsing, the index, JSON), and prints a table.
    .venv/bin/python -m bench.geo [--points 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tractcast.geo.client import LayerReplica
from tractcast.geo.index import NO_TRACT, TractIndex

ROOT = Path(__file__).resolve().parents[1]
ITALY = ROOT.parent / "shared" / "data" / "italy"
MUNICIPALITIES = ITALY / "municipalities.geojson.gz"
MILAN = (45.4642, 9.19)
ROME = (41.9028, 12.4964)


def load_index(path: Path) -> TractIndex:
    return TractIndex.from_file(path)


def random_points(index: TractIndex, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points (lats, lons) in the layer's bounding box."""
    west, south, east, north = index.bounds
    rng = np.random.default_rng(seed)
    return rng.uniform(south, north, count), rng.uniform(west, east, count)


def timings_ms(call: Callable[[], object], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def row(name: str, times: list[float], goal: str = "") -> str:
    p50 = statistics.median(times)
    p99 = float(np.percentile(times, 99))
    return f"  {name:<52}{p50:>9.2f}{p99:>9.2f}{min(times):>9.2f}   {goal}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="size of the big batch")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    started = time.perf_counter()
    index = load_index(MUNICIPALITIES)
    load_s = time.perf_counter() - started

    from services.geo.app import create_app
    from tractcast.settings import Settings

    client = create_app(Settings(tracts=str(MUNICIPALITIES)), index=index).test_client()
    lats, lons = inside_points(index, 1000, seed=1)
    points = zip(lats.tolist(), lons.tolist(), strict=True)
    body = {"points": [{"lat": lat, "lon": lon} for lat, lon in points]}
    radius_url = f"/v1/tracts/radius?lat={MILAN[0]}&lon={MILAN[1]}&radius_km=50"
    hits = len(index.tracts_within_radius(*MILAN, 50.0))
    runs = args.runs
    for checked in (client.post("/v1/tracts/lookup", json=body), client.get(radius_url)):
        assert checked.status_code == 200, checked.json  # a bench of error answers means nothing
    replica = LayerReplica()  # the API's copy of the layer, as geo sends it
    replica.replace(client.get("/v1/tracts/replica").json, None)
    assert replica.copy is not None
    rows = [
        ("index: 1,000 points inside municipalities",
         lambda: index.positions_for_points(lats, lons), ""),
        ("geo service: POST /v1/tracts/lookup, those points",
         lambda: client.post("/v1/tracts/lookup", json=body), ""),
        (f"index: 50 km around Milan ({hits} tracts)",
         lambda: index.positions_within_radius(*MILAN, 50.0), ""),
        ("index: 50 km around Rome", lambda: index.positions_within_radius(*ROME, 50.0), ""),
        ("geo service: GET /v1/tracts/radius, 50 km, Milan", lambda: client.get(radius_url), ""),
        ("the API's copy of the layer: 50 km, Milan",
         lambda: replica.copy.tracts_within_radius(*MILAN, 50.0), ""),
    ]  # fmt: skip

    print(f"municipality layer: {len(index):,} polygons, loaded and indexed in {load_s:.1f} s")
    grid = index.grid
    print(f"grid: {grid.nx} x {grid.ny} cells, {index.border_share():.1%} crossed by a border")
    print("timings on a shared machine, under load; ms per call, in-process")
    print(f"  {'':<52}{'p50':>9}{'p99':>9}{'min':>9}   goal")
    for name, call, goal in rows:
        print(row(name, timings_ms(call, runs), goal))

    big_lats, big_lons = random_points(index, args.points, seed=0)
    big = timings_ms(lambda: index.positions_for_points(big_lats, big_lons), runs=3, warmup=1)
    inside = int((index.positions_for_points(big_lats, big_lons) != NO_TRACT).sum())
    seconds = min(big) / 1000
    print(
        f"  index: {args.points:,} random points in the bbox ({inside:,} inside): "
        f"{seconds:.2f} s, best of 3 ({args.points / seconds / 1e6:.1f} M points/s)"
    )


def inside_points(index: TractIndex, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points of the bounding box that fall inside a tract, `count` of them."""
    lats, lons = random_points(index, count * 10, seed)
    inside = np.flatnonzero(index.positions_for_points(lats, lons) != NO_TRACT)[:count]
    return lats[inside], lons[inside]


if __name__ == "__main__":
    main()
