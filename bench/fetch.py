"""How a replica's fetch from S3 grows with the layer: bundle and layer copy, by tract count.

For each size, a synthetic layer (Voronoi cells as in bench.census) and a bundle answering for
every tract are written into a store, mirrored to moto's S3 server (a subprocess on loopback),
then fetched the way an API or geo replica with TRACTCAST_SERVING_SOURCE=s3 fetches them: into
an empty cache, every file checked against its sha256 (tractcast.registry.remote). Prints, per
size, the median of `--runs` fetches into a fresh cache: the bundle's fetch (download + verify),
its load by the API's loader (median of as many loads), and the layer copy's fetch. Then, per
size, the same bundle loaded once in a fresh process, as written today (format 2, arrays) and as
written before (format 1, JSON): seconds, and how much the process's memory grew (its peak, and
what stays once loaded).

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

from bench.census import write_census_layer
from bench.serving import free_port, publish, varied_bundle
from tractcast.geo.index import TractIndex
from tractcast.registry.mirror import S3ArtifactMirror
from tractcast.registry.remote import RemoteBundleSource, RemoteLayer
from tractcast.registry.store import RegistryReader
from tractcast.serving.bundle import load_bundle, write_bundle

# Run in a fresh process: loads the bundle in argv[1], prints seconds, then the growth (MB) over
# what the imports took of: peak memory, resident memory, resident memory once every tract was
# looked up, and of that the pages mapped from files (shared with other workers).
LOAD_IN_CHILD = """
import sys, time
from pathlib import Path
from tractcast.serving.bundle import load_bundle

def kb(field):
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in lines if line.startswith(field)))

before, files = kb("VmRSS:"), kb("RssFile:")
started = time.perf_counter()
bundle = load_bundle(Path(sys.argv[1]))
seconds = time.perf_counter() - started
peak, loaded = kb("VmHWM:"), kb("VmRSS:")
for tract_id in bundle.tracts:
    bundle.tracts[tract_id]
print(seconds, *((now - then) / 1024 for now, then in (
    (peak, before), (loaded, before), (kb("VmRSS:"), before), (kb("RssFile:"), files))))
"""

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


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
    as_json = base / f"format1-{size}"
    write_bundle(bundle, as_json, bundle_format=1)
    return {
        "json_mb": size_mb(as_json),
        **{f"arrays_{key}": value for key, value in load_in_child(fetched).items()},
        **{f"json_{key}": value for key, value in load_in_child(as_json).items()},
        "tracts": tracts,
        "bundle_mb": size_mb(fetched),
        "bundle_s": median_seconds(fetch_bundle, base, runs),
        "load_s": load,
        "layer_mb": size_mb(layer),
        "layer_s": median_seconds(lambda cache: RemoteLayer(mirror, cache).path(), base, runs),
    }


def load_in_child(directory: Path) -> dict[str, float]:
    """Seconds and memory growth (MB, see LOAD_IN_CHILD) of one load in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_CHILD, str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, peak, loaded, used, files = (float(value) for value in done.stdout.split())
    return {"s": seconds, "peak": peak, "rss": loaded, "used": used, "files": files}


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
            rows = []
            for size in (int(text) for text in args.sizes.split(",")):
                row = measure(size, mirror, base, args.runs)
                rows.append(row)
                print(
                    f"| {row['tracts']:,} | {row['bundle_mb']:.2f} MB | "
                    f"{row['bundle_s'] * 1000:.0f} ms | {row['load_s'] * 1000:.0f} ms | "
                    f"{row['layer_mb']:.2f} MB | {row['layer_s'] * 1000:.0f} ms |",
                    flush=True,
                )
            print(
                "\none load in a fresh process, format 2 (arrays) / format 1 (JSON); memory: growth"
            )
            print(
                "| tracts | bundle | load | peak memory | resident once loaded | resident after "
                "a look-up of every tract (of it mapped from the file) |"
            )
            print("|---|---|---|---|---|---|")
            for row in rows:
                print(
                    f"| {row['tracts']:,} | {row['bundle_mb']:.1f} / {row['json_mb']:.1f} MB | "
                    f"{row['arrays_s'] * 1000:.0f} / {row['json_s'] * 1000:.0f} ms | "
                    f"{row['arrays_peak']:.0f} / {row['json_peak']:.0f} MB | "
                    f"{row['arrays_rss']:.0f} / {row['json_rss']:.0f} MB | "
                    f"{row['arrays_used']:.0f} ({row['arrays_files']:.0f}) / "
                    f"{row['json_used']:.0f} ({row['json_files']:.0f}) MB |"
                )
        finally:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
