"""Ingest benchmarks: time and peak memory of `ingest_source` on three layouts.

1. the Italy long file (262,807 rows, gzip);
2. the same data as the portal publishes it: 1,781 daily files in a directory;
3. a synthetic wide file, 3,000 tracts x 1,000 days, with a matching grid layer;
4. a synthetic long file, 3,000 tracts x 365 days, whose count stands beside 7 columns derived
   from it or measuring something else (per-100k rates, 7-day sums and means, daily differences,
   deaths, tests): the cost of finding the relations between columns.

Each case runs in its own child process, so its peak resident memory (ru_maxrss) is its own.
    .venv/bin/python -m bench.ingest [--keep DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ITALY = ROOT.parent / "shared" / "data" / "italy"
NUTS_FROM = "20210115"  # the daily files gained three NUTS columns that day
TARGETS = {"italy_long": 10.0, "italy_daily": 30.0, "wide": 20.0, "measures": 30.0}
MEASURE_DAYS = 365
MEMORY_TARGET_MB = 1024.0
WIDE_TRACTS, WIDE_DAYS, GRID_COLS = 3000, 1000, 60


def write_italy_daily(out: Path) -> int:
    """Split the combined Italy file back into the portal's daily files; return their number."""
    lines = gzip.decompress((ITALY / "cases_provinces.csv.gz").read_bytes()).split(b"\n")
    header, rows = lines[0], [line for line in lines[1:] if line]
    short_header = b",".join(header.split(b",")[:11])
    by_day: dict[str, list[bytes]] = {}
    for row in rows:
        by_day.setdefault(row[:10].replace(b"-", b"").decode(), []).append(row)
    out.mkdir(parents=True, exist_ok=True)
    for day, day_rows in by_day.items():
        if day < NUTS_FROM:  # the early files had 11 columns
            body = [short_header, *(r[:-3] if r.endswith(b",,,") else r for r in day_rows)]
        else:
            body = [header, *day_rows]
        (out / f"dpc-covid19-ita-province-{day}.csv").write_bytes(b"\n".join(body) + b"\n")
    return len(by_day)


def write_wide(out: Path, seed: int = 7) -> tuple[Path, Path]:
    """A wide CSV (one column per day, ids without leading zeros) and its grid GeoJSON layer."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = []
    for i in range(WIDE_TRACTS):
        row, col = divmod(i, GRID_COLS)
        west, south = 5.0 + col * 0.1, 40.0 + row * 0.1
        ring = [[west, south], [west + 0.1, south], [west + 0.1, south + 0.1],
                [west, south + 0.1], [west, south]]  # fmt: skip
        features.append(
            {
                "type": "Feature",
                "properties": {"geoid": f"{i + 1:05d}", "name": f"Tract {i + 1}"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    layer = out / "grid.geojson"
    layer.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    rates = rng.gamma(2.0, 5.0, (WIDE_TRACTS, 1)) * (1.2 + np.sin(np.arange(WIDE_DAYS) / 60.0))
    cumulative = np.cumsum(rng.poisson(rates), axis=1)
    dates = pd.date_range("2020-01-22", periods=WIDE_DAYS, freq="D")
    frame = pd.DataFrame(cumulative, columns=[f"{d.month}/{d.day}/{d:%y}" for d in dates])
    frame.insert(0, "FIPS", [str(i + 1) for i in range(WIDE_TRACTS)])
    frame.insert(1, "Admin2", [f"Tract {i + 1}" for i in range(WIDE_TRACTS)])
    cases = out / "time_series_wide.csv"
    frame.to_csv(cases, index=False)
    return cases, layer


def write_measures(out: Path, seed: int = 11) -> Path:
    """A long file over the wide case's grid layer: the cumulative count and 7 other columns."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    population = rng.integers(20_000, 2_000_000, WIDE_TRACTS).astype(float)
    daily = rng.poisson(
        population[:, None] / 1e5 * 15 * (1.2 + np.sin(np.arange(MEASURE_DAYS) / 30))
    )
    cumulative = np.cumsum(daily, axis=1)
    week = np.cumsum(daily, axis=1)
    week[:, 7:] -= week[:, :-7]
    per_100k = 1e5 / population[:, None]
    dates = pd.date_range("2021-01-01", periods=MEASURE_DAYS, freq="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame(
        {
            "date": np.tile(dates, WIDE_TRACTS),
            "geoid": np.repeat([f"{i + 1:05d}" for i in range(WIDE_TRACTS)], MEASURE_DAYS),
            "cases_total": cumulative.ravel(),
            "cases_new": daily.ravel(),
            "cases_7d": week.ravel(),
            "cases_7d_avg": np.round(week / 7).ravel().astype(int),
            "cases_total_per_100k": np.round(cumulative * per_100k).ravel().astype(int),
            "incidence_7d_per_100k": np.round(week * per_100k, 1).ravel(),
            "deaths_total": np.cumsum(rng.binomial(daily, 0.01), axis=1).ravel(),
            "tests_new": (daily * 8 + rng.poisson(30, daily.shape)).ravel(),
        }
    )
    cases = out / "measures_long.csv"
    frame.to_csv(cases, index=False)
    return cases


def run_case(source: str, layer: str, id_field: str | None) -> dict[str, object]:
    """Ingest one source in this process; seconds, peak memory and the report's key figures."""
    from tractcast.data.ingest import ingest_source
    from tractcast.geo.index import TractIndex

    index = TractIndex.from_file(layer, id_field=id_field)
    started = time.perf_counter()
    result = ingest_source(source, index)
    seconds = time.perf_counter() - started
    report = result.report
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "format": report["format"],
        "files": report["files"],
        "rows_read": report["rows_read"],
        "tracts_matched": report["tracts_matched"],
        "days": report["days"],
        "value_kind": report["value_kind"],
        "value_column": report["value_column"],
        "set_aside": sorted(report["evidence"]["value"].get("rejected", {})),
    }


def in_child(source: Path, layer: Path, id_field: str | None) -> dict[str, object]:
    command = [sys.executable, "-m", "bench.ingest", "--child", str(source), str(layer)]
    if id_field:
        command += ["--id-field", id_field]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{source}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[tuple[str, dict[str, object]]]) -> None:
    print(f"{'case':<34}{'seconds':>9}{'target':>8}{'peak MB':>9}  {'format':<14}rows/files")
    for name, figures in rows:
        label = {
            "italy_long": "Italy long file (262,807 rows)",
            "italy_daily": "Italy as 1,781 daily files",
            "wide": "wide 3,000 tracts x 1,000 days",
            "measures": "long 3,000 x 365, 8 count columns",
        }[name]
        size = f"{figures['rows_read']:,} rows / {figures['files']:,} files"
        print(
            f"{label:<34}{figures['seconds']:>9.2f}{TARGETS[name]:>7.0f}s"
            f"{figures['peak_mb']:>9.0f}  {figures['format']:<14}{size}"
        )
    ok = all(
        float(f["seconds"]) <= TARGETS[n] and float(f["peak_mb"]) <= MEMORY_TARGET_MB  # type: ignore[arg-type]
        for n, f in rows
    )
    print(f"all within targets (time and {MEMORY_TARGET_MB:.0f} MB): {'yes' if ok else 'NO'}")
    for name, figures in rows:
        print(f"{name}: value column {figures['value_column']!r}, set aside {figures['set_aside']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "LAYER"), help=argparse.SUPPRESS)
    parser.add_argument("--id-field", help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help="build the inputs here and keep them")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(args.child[0], args.child[1], args.id_field)))
        return 0
    with tempfile.TemporaryDirectory(prefix="tractcast-bench-") as tmp:
        work = args.keep or Path(tmp)
        daily = work / "dati-province"
        if not daily.is_dir():
            write_italy_daily(daily)
        wide, grid = work / "wide" / "time_series_wide.csv", work / "wide" / "grid.geojson"
        if not wide.is_file():
            wide, grid = write_wide(work / "wide")
        measures = work / "measures" / "measures_long.csv"
        if not measures.is_file():
            measures = write_measures(work / "measures")
        provinces = ITALY / "provinces.geojson"
        rows = [
            ("italy_long", in_child(ITALY / "cases_provinces.csv.gz", provinces, None)),
            ("italy_daily", in_child(daily, provinces, None)),
            ("wide", in_child(wide, grid, None)),
            ("measures", in_child(measures, grid, "geoid")),
        ]
    print("ingest_source, each case in a fresh child process (machine shared with other work)")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
