"""A full retrain at census scale: thousands of tracts x 1,000 days, the real `tractcast train`.

The data are synthetic but shaped like real ones: each tract takes the daily new cases of one
Italian province (the 1,000 days to the end of 2022, while Italy still published daily), scaled
to a tract's share (0.5-5%), drawn as Poisson counts (many zeros, as small areas have), published
as one long file; the layer is Voronoi cells over a country-sized box (bench.census). Each size
runs in a fresh store, in a child process, TensorFlow start-up included; it prints the stages,
the peak memory of the children so far, and the seconds per added tract between the first and
the last size. Goal: 10,000 tracts x 1,000 days within 15 minutes on 2 cores and 8 GB.
    .venv/bin/python -m bench.retrain_scale [--sizes 10000x1000,2500x1000] [--origins N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.census import write_census_layer
from bench.retrain import ITALY, timed_train

BUDGET_SECONDS = 15 * 60.0


# Italy's daily publication ended in 2023 (weekly totals after it, which the plausibility
# check rightly refuses as one-day dumps): the series end on the last day of 2022.
LAST_DAILY_DAY = "2022-12-31"


def province_daily(n_days: int) -> pd.DataFrame:
    """n_days of daily new cases per Italian province, to LAST_DAILY_DAY (days x provinces)."""
    raw = pd.read_csv(
        ITALY / "cases_provinces.csv.gz",
        usecols=["data", "codice_provincia", "totale_casi"],
        dtype={"codice_provincia": str},
    )
    raw = raw[raw["codice_provincia"].astype(int) <= 111]
    raw["day"] = raw["data"].str[:10]
    totals = raw.pivot_table(index="day", columns="codice_provincia", values="totale_casi")
    totals = totals[totals.index <= LAST_DAILY_DAY]
    return totals.ffill().diff().clip(lower=0).fillna(0).iloc[-n_days:]


def write_census_cases(target: Path, layer: Path, n_days: int, seed: int = 0) -> int:
    """A long file (date, tract, new cases) for every tract of the layer; returns the tracts."""
    ids = [f["properties"]["id"] for f in json.loads(layer.read_text())["features"]]
    daily = province_daily(n_days)
    rng = np.random.default_rng(seed)
    source = rng.integers(0, daily.shape[1], len(ids))
    share = rng.uniform(0.005, 0.05, len(ids))
    counts = rng.poisson(daily.to_numpy()[:, source] * share)  # days x tracts
    with gzip.open(target, "wt", encoding="utf-8") as out:
        out.write("date,tract,new_cases\n")
        for day, row in zip(daily.index, counts, strict=True):
            out.write("".join(f"{day},{t},{c}\n" for t, c in zip(ids, row.tolist(), strict=True)))
    return len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000x1000,2500x1000")
    parser.add_argument("--origins", type=int, default=None, help="default: the settings' 8")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    print(f"{'tracts':>7}{'days':>7}{'seconds':>9}{'peak MB':>9}  stages (s)   champion")
    runs: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory(prefix="tractcast-bench-scale-") as tmp:
        for n_tracts, n_days in sizes:
            base = Path(tmp) / f"{n_tracts}x{n_days}"
            base.mkdir()
            layer, cases = base / "tracts.geojson", base / "cases.csv.gz"
            started = time.monotonic()
            written = write_census_layer(layer, n_tracts + 1)
            write_census_cases(cases, layer, n_days)
            print(f"  ({written:,} tracts written in {time.monotonic() - started:.0f} s)")
            seconds, outcome = timed_train(cases, base / "store", args.origins, tracts=layer)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            stages = " ".join(f"{k} {v:.0f}" for k, v in outcome["timings"].items())
            print(
                f"{written:>7}{n_days:>7}{seconds:>9.1f}{peak:>9.0f}  {stages}"
                f"   {outcome['champion']}",
                flush=True,
            )
            runs.append((written, seconds))
    if len(runs) > 1:
        (small, small_s), (large, large_s) = runs[0], runs[-1]
        print(f"per added tract: {(large_s - small_s) / (large - small) * 1000:.1f} ms")
    largest = max(runs)
    verdict = "within" if largest[1] <= BUDGET_SECONDS else "OVER"
    print(
        f"largest ({largest[0]:,} tracts): {largest[1]:.0f} s, {verdict} the "
        f"{BUDGET_SECONDS:.0f} s budget "
        f"({os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end)"
    )


if __name__ == "__main__":
    main()
