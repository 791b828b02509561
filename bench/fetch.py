"""How a replica's fetch from S3 grows with the layer: bundle and layer copy, by tract count.

For each size, a synthetic layer (Voronoi cells as in bench.census) and a bundle answering for
every tract are written into a store, mirrored to moto's S3 server (a subprocess on loopback),
then fetched the way an API or geo replica with TRACTCAST_SERVING_SOURCE=s3 fetches them: into
an empty cache, every file checked against its sha256 (tractcast.registry.remote). Prints, per
size, the median of `--runs` fetches into a fresh cache: the bundle's fetch (download + verify),
its load by the API's loader (median of as many loads), and the layer copy's fetch.

    .venv/bin/python -m bench.fetch [--sizes 100,1000,10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import numpy as np

from bench.census import write_census_layer
from bench.serving import free_port, publish
from tractcast.geo.index import TractIndex
from tractcast.registry.mirror import S3ArtifactMirror
from tractcast.registry.remote import RemoteBundleSource, RemoteLayer
from tractcast.registry.store import RegistryReader
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, load_bundle

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def varied_bundle(tract_ids: list[str], data_version: str, seed: int = 0) -> Bundle:
    """A bundle for every tract with numbers of its own (a bundle of equal forecasts would
    shrink to almost nothing: the bundle format shares what repeats), and 90 days of history."""
    rng = np.random.default_rng(seed)
    tracts = {}
    for tract_id in tract_ids:
        level = float(rng.gamma(2.0, 40.0))
        days = tuple(
            ForecastDay(
                f"2023-02-{d + 1:02d}",
                round(level * (1 + 0.02 * d), 2),
                round(level * 0.7, 2),
                round(level * (1.3 + 0.03 * d), 2),
                ((0.5, round(level * 0.85, 2), round(level * 1.15, 2)),
                 (0.95, round(level * 0.5, 2), round(level * 1.6, 2))),
            )
            for d in range(14)
        )  # fmt: skip
        history = tuple(int(v) for v in rng.poisson(level, 90))
        tracts[tract_id] = TractForecast(
            tract_id, "2023-01-31", int(level * 300), history[-1], days, history
        )
    return Bundle(
        bundle_id=f"v0001-synthetic@{data_version}",
        model_version="v0001-synthetic",
        data_version=data_version,
        as_of="2023-01-31",
        created_at="2023-02-01T00:00:00+00:00",
        horizon=14,
        tracts=tracts,
    )


def median_seconds(action: Callable[[Path], object], base: Path, runs: int) -> float:
    """Median seconds of `action(fresh cache dir)` over `runs` runs."""
    times = []
    for run in range(runs):
        cache = base / f"cache-{run}-{secrets.token_hex(3)}"
        started = time.perf_counter()
        action(cache)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def measure(size: int, mirror: S3ArtifactMirror, base: Path, runs: int) -> dict[str, float]:
    layer = base / f"layer-{size}" / "tracts.geojson"
    layer.parent.mkdir(parents=True)
    tracts = write_census_layer(layer, size)
    ids = [tract.id for tract in TractIndex.from_file(layer).tracts]
    bundle = varied_bundle(ids, f"bench{size}")  # one id per size: the mirror skips a known one
    store = base / f"store-{size}"
    publish(store, bundle)
    mirror.sync(RegistryReader(store))
    mirror.sync_layer(layer)
    bundle_id = bundle.bundle_id

    def fetch_bundle(cache: Path) -> Path:
        return RemoteBundleSource(mirror, None, cache).bundle_path(bundle_id)

    fetched = fetch_bundle(base / f"first-{size}")
    load = statistics.median(timed(lambda: load_bundle(fetched)) for _ in range(runs))
    return {
        "tracts": tracts,
        "bundle_mb": size_mb(fetched),
        "bundle_s": median_seconds(fetch_bundle, base, runs),
        "load_s": load,
        "layer_mb": size_mb(layer),
        "layer_s": median_seconds(lambda cache: RemoteLayer(mirror, cache).path(), base, runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    with tempfile.TemporaryDirectory(prefix="tractcast-fetch-") as tmp:
        base = Path(tmp)
        with open(base / "moto.log", "wb") as log:
            server = subprocess.Popen(
                [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
            )
        try:
            endpoint = f"http://127.0.0.1:{port}"
            client = boto3.client("s3", endpoint_url=endpoint)
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.create_bucket(Bucket="tractcast-bench")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            mirror = S3ArtifactMirror("tractcast-bench", client=client)
            print(f"moto S3 on loopback; median of {args.runs} fetches into an empty cache")
            print("| tracts | bundle | fetch + sha256 | load | layer (GeoJSON) | fetch + sha256 |")
            print("|---|---|---|---|---|---|")
            for size in (int(text) for text in args.sizes.split(",")):
                row = measure(size, mirror, base, args.runs)
                print(
                    f"| {row['tracts']:,} | {row['bundle_mb']:.2f} MB | "
                    f"{row['bundle_s'] * 1000:.0f} ms | {row['load_s'] * 1000:.0f} ms | "
                    f"{row['layer_mb']:.2f} MB | {row['layer_s'] * 1000:.0f} ms |",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
