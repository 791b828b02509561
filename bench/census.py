"""Serving a layer the size of a country's census tracts, through nginx on the real stack.

A synthetic layer: Voronoi cells around random sites in a country-sized box (about 85,000
polygons by default, denser towards a few "cities" as real tracts are), written as GeoJSON, with a
synthetic bundle answering for every tract. The stack (gunicorn api and geo, nginx) starts on
free loopback ports, then:
1. point lookups (`GET /v1/forecast`) on distinct points inside tracts, one keep-alive
   connection: p50 / p99 (goal p99 <= 5 ms);
2. `GET /v1/stats/radius` at 50 km around the densest city and in the countryside: p50
   (goal <= 10 ms), each asked 200 times; and around 200 centres 10 m apart in the city,
   each asked once (nothing reused: the tracts found and their answer rendered each time);
   beside each, the CPU time a request cost the api workers and nginx (all their threads);
3. memory (RSS / PSS) of every api and geo worker (goals <= 300 MB api, <= 1.5 GB geo);
4. how long the layer took to load and the API's copy of it to arrive;
5. in this process, before the stack starts: the city radius around a new centre each time, as
   an api worker answers it from its copy of the layer (finding the tracts, then the JSON).

    .venv/bin/python -m bench.census [--tracts 85000] [--runs 2000] [--workers 2] [--varied]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import box, mapping

from bench.serving import (
    cpu_of,
    describe,
    forecast_paths,
    inside_points,
    memory_lines,
    publish,
    running,
    stack_settings,
    synthetic_bundle,
    timed,
    varied_bundle,
    worker_memory,
    workers_of,
)
from tractcast.geo.client import LayerReplica
from tractcast.geo.index import TractIndex
from tractcast.runner import Stack
from tractcast.serving.answers import radius_json
from tractcast.serving.bundle import Bundle

# A box the size of France (about 1,100 x 1,000 km).
WEST, SOUTH, EAST, NORTH = -4.5, 42.5, 8.0, 51.0
CITIES = ((48.8566, 2.3522), (45.764, 4.8357), (43.2965, 5.3698), (50.6292, 3.0573))
COUNTRYSIDE = (46.5, -1.0)


def census_sites(count: int, seed: int = 0) -> np.ndarray:
    """(lon, lat) sites: half spread evenly, half clustered around the cities."""
    rng = np.random.default_rng(seed)
    even = count // 2
    lons = rng.uniform(WEST, EAST, even)
    lats = rng.uniform(SOUTH, NORTH, even)
    per_city = (count - even) // len(CITIES) + 1
    city_lats = np.concatenate([rng.normal(lat, 0.35, per_city) for lat, _ in CITIES])
    city_lons = np.concatenate([rng.normal(lon, 0.5, per_city) for _, lon in CITIES])
    lons = np.concatenate([lons, city_lons])[:count].clip(WEST + 1e-4, EAST - 1e-4)
    lats = np.concatenate([lats, city_lats])[:count].clip(SOUTH + 1e-4, NORTH - 1e-4)
    sites = np.unique(np.round(np.column_stack([lons, lats]), 6), axis=0)
    return sites


def write_census_layer(path: Path, count: int, seed: int = 0) -> int:
    """Voronoi cells of the sites, clipped to the box, as a GeoJSON layer; returns the count."""
    sites = census_sites(count, seed)
    frame = box(WEST, SOUTH, EAST, NORTH)
    cells = shapely.voronoi_polygons(shapely.multipoints(sites), extend_to=frame)
    polygons = shapely.intersection(np.asarray(cells.geoms), frame)
    polygons = shapely.set_precision(polygons, 1e-6)
    rng = np.random.default_rng(seed + 1)
    features = [
        {
            "type": "Feature",
            "properties": {
                "id": f"T{number:06d}",
                "name": f"Tract {number}",
                "population": int(rng.integers(800, 8000)),
            },
            "geometry": mapping(polygon),
        }
        for number, polygon in enumerate(polygons)
        if not polygon.is_empty and polygon.area > 0
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return len(features)


def each_timed(url: str, paths: list[str]) -> list[float]:
    """Milliseconds of each GET, in order, on one keep-alive connection; 2xx required."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    times = []
    try:
        for path in paths:
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if not 200 <= response.status < 300:
                raise RuntimeError(f"GET {path}: HTTP {response.status}")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return times


def each_costed(url: str, paths: list[str], stack: Stack) -> tuple[list[float], str]:
    """each_timed, and what each request cost the api workers and nginx: CPU time (all their
    threads), which other jobs on the machine stretch far less than the wall time, and the api
    workers' minor page faults."""
    api = workers_of(stack.processes["api"].pid)
    nginx = workers_of(stack.processes["nginx"].pid)
    (api_cpu, api_faults), (nginx_cpu, _) = cpu_of(api), cpu_of(nginx)
    times = each_timed(url, paths)
    (api_after, faults_after), (nginx_after, _) = cpu_of(api), cpu_of(nginx)
    count = len(paths)
    cost = (
        f"api workers {(api_after - api_cpu) * 1000 / count:.2f} ms of CPU and "
        f"{(faults_after - api_faults) / count:.0f} page faults a request, nginx "
        f"{(nginx_after - nginx_cpu) * 1000 / count:.2f} ms of CPU"
    )
    return times, cost


def radius_in_process(
    index: TractIndex, bundle: Bundle, centre: tuple[float, float], runs: int = 200
) -> tuple[list[float], list[float]]:
    """CPU milliseconds of each 50 km radius around a new centre (10 m apart, as through nginx)
    on the API's copy of the layer: finding the tracts, then rendering the JSON. The first five
    are left out (rows rendered for the first time)."""
    replica = LayerReplica()
    replica.replace(index.replica(), None)
    assert replica.copy is not None
    finding, rendering = [], []
    for i in range(1, runs + 6):
        lat, lon = centre[0] + 1e-4 * i, centre[1]
        started = time.thread_time()
        hits = replica.copy.tracts_within_radius(lat, lon, 50.0)
        found = time.thread_time()
        radius_json(bundle, hits, center=(lat, lon), radius_km=50.0)
        finding.append((found - started) * 1000)
        rendering.append((time.thread_time() - found) * 1000)
    return finding[5:], rendering[5:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracts", type=int, default=85_000)
    parser.add_argument("--runs", type=int, default=2000, help="sequential point lookups")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of api and geo")
    parser.add_argument(
        "--varied",
        action="store_true",
        help="a bundle with numbers of its own per tract, three intervals and 90 days of history "
        "(as bench.fetch), instead of the same forecast everywhere",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tractcast-bench-census-") as tmp:
        base = Path(tmp)
        layer = base / "census.geojson"
        started = time.monotonic()
        count = write_census_layer(layer, args.tracts)
        print(f"{count:,} tracts written in {time.monotonic() - started:.1f} s "
              f"({layer.stat().st_size / 1e6:.0f} MB of GeoJSON)", flush=True)  # fmt: skip
        started = time.monotonic()
        index = TractIndex.from_file(layer)
        indexed = time.monotonic() - started
        settings = stack_settings(base / "stack", tracts=str(layer), workers=args.workers)
        if args.varied:
            bundle = varied_bundle([tract.id for tract in index.tracts], "bench")
        else:
            bundle = synthetic_bundle(index)
        publish(Path(settings.store), bundle)
        finding, rendering = radius_in_process(index, bundle, CITIES[0])
        del bundle
        points = inside_points(layer, args.runs, seed=2)
        # The densest place (a city's centre) and a typical one (the countryside between them).
        centres = {"city": CITIES[0], "countryside": COUNTRYSIDE}
        radius_paths = {
            name: f"/v1/stats/radius?lat={lat}&lon={lon}&radius_km=50"
            for name, (lat, lon) in centres.items()
        }
        hits = {
            name: len(index.positions_within_radius(*c, 50.0)[0]) for name, c in centres.items()
        }
        del index
        print("starting the stack over the layer ...", flush=True)
        started = time.monotonic()
        with running(settings) as (url, stack):
            ready = time.monotonic() - started
            # The API loads geo's copy of the layer in the background: wait until radius answers.
            copy_started = time.monotonic()
            deadline = copy_started + 600
            while time.monotonic() < deadline:
                try:
                    timed(url, "GET", radius_paths["city"], runs=1, warmup=0)
                    break
                except RuntimeError:
                    time.sleep(1)
            copied = time.monotonic() - copy_started
            paths = forecast_paths(points)
            lookups = each_timed(url, paths)
            lookups_warm = each_timed(url, paths)
            radius, costs = {}, {}
            for name, path in radius_paths.items():
                each_timed(url, [path] * 5)  # the first renders the answer, the rest reuse it
                radius[name], costs[name] = each_costed(url, [path] * 200, stack)
            # The same asked again is answered with the text rendered the first time: a new
            # centre each time (10 m apart) measures finding and rendering the tracts.
            lat, lon = centres["city"]
            moving = [f"/v1/stats/radius?lat={lat + 1e-4 * i:.5f}&lon={lon}&radius_km=50"
                      for i in range(1, 201)]  # fmt: skip
            radius_moving, moving_cost = each_costed(url, moving, stack)
            memory = worker_memory(stack, "census")

    report = [
        "",
        f"layer: {count:,} synthetic tracts (Voronoi cells over {EAST - WEST:.1f} x "
        f"{NORTH - SOUTH:.1f} degrees); TractIndex built in process in {indexed:.1f} s",
        f"stack ready through nginx after {ready:.1f} s; the API's copy of the layer answered "
        f"{copied:.1f} s later; {args.workers} api + {args.workers} geo workers",
        "sequential, one keep-alive connection, through nginx:",
        f"  GET /v1/forecast, {len(paths):,} distinct points (first pass): {describe(lookups)}",
        f"  GET /v1/forecast, the same points again:            {describe(lookups_warm)}"
        "   (goal p99 <= 5 ms)",
        *(
            line
            for name in centres
            for line in (
                f"  GET /v1/stats/radius 50 km, {name} ({hits[name]:,} tracts): "
                f"{describe(radius[name])}   (goal p50 <= 10 ms)",
                f"    {costs[name]}",
            )
        ),
        f"  GET /v1/stats/radius 50 km, city, a new centre each time: {describe(radius_moving)}",
        f"    {moving_cost}",
        "in process, the city radius around a new centre each time (CPU ms, p50 / p99): finding "
        f"the tracts {statistics.median(finding):.2f} / {np.percentile(finding, 99):.2f}, the "
        f"JSON {statistics.median(rendering):.2f} / {np.percentile(rendering, 99):.2f}, in all "
        f"{statistics.median(np.add(finding, rendering)):.2f} / "
        f"{np.percentile(np.add(finding, rendering), 99):.2f} (mean "
        f"{np.mean(np.add(finding, rendering)):.2f}, to set beside the api workers' CPU above)",
        "memory per worker (RSS / PSS MB; goals api <= 300, geo <= 1,500):",
    ]
    print("\n".join(report + memory_lines(memory)))


if __name__ == "__main__":
    main()
