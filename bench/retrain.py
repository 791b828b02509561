"""Wall time of a full retrain with backtest (`tractcast train`) on Italy, at 4 data sizes.

Each size is a slice of the Italy file (every k-th province, the last D days) in a fresh store;
the run is the real command line in a child process, TensorFlow start-up included. The last size
is the whole data set: the 5-minute budget applies to it.
    .venv/bin/python -m bench.retrain [--sizes 27x450,54x900,107x900,107x1781] [--origins N]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ITALY = ROOT.parent / "shared" / "data" / "italy"
LAST_DAY = date(2025, 1, 8)
BUDGET_SECONDS = 300.0


def write_slice(target: Path, n_tracts: int, n_days: int) -> None:
    """The Italy file with `n_tracts` real provinces spread over the list and the last days."""
    with gzip.open(ITALY / "cases_provinces.csv.gz", "rt", encoding="utf-8") as src:
        header = next(src)
        columns = next(csv.reader([header]))
        code_at = columns.index("codice_provincia")
        lines = list(src)
    codes = sorted({row[code_at] for row in csv.reader(io.StringIO("".join(lines[:200])))})
    real = [code for code in codes if int(code) <= 111]
    step = len(real) / n_tracts
    keep = {real[int(k * step)] for k in range(n_tracts)}
    first = (LAST_DAY - timedelta(days=n_days - 1)).isoformat()
    with gzip.open(target, "wt", encoding="utf-8") as out:
        out.write(header)
        for line, row in zip(lines, csv.reader(lines), strict=True):
            if line[:10] >= first and row[code_at] in keep:
                out.write(line)


def timed_train(
    cases: Path, store: Path, origins: int | None, tracts: Path = ITALY / "provinces.geojson"
) -> tuple[float, dict]:
    """Seconds of one `tractcast train --json` in a child process, and its outcome."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACTCAST_")}
    env.update(
        TRACTCAST_DATA_SOURCE=str(cases),
        TRACTCAST_TRACTS=str(tracts),
        TRACTCAST_STORE=str(store),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(ROOT),
    )
    if origins:
        env["TRACTCAST_BACKTEST_ORIGINS"] = str(origins)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "tractcast.cli", "train", "--json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )  # fmt: skip  (its progress goes on to this terminal)
    seconds = time.monotonic() - started
    if out.returncode != 0:
        raise RuntimeError(f"tractcast train failed (exit {out.returncode}); see above")
    return seconds, json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="27x450,54x900,107x900,107x1781")
    parser.add_argument("--origins", type=int, default=None, help="default: the settings' 4")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    print(f"{'tracts':>7}{'days':>7}{'cells':>10}{'seconds':>9}  stages (s)   champion")
    with tempfile.TemporaryDirectory(prefix="tractcast-bench-") as tmp:
        for n_tracts, n_days in sizes:
            cases = Path(tmp) / f"italy-{n_tracts}x{n_days}.csv.gz"
            write_slice(cases, n_tracts, n_days)
            seconds, outcome = timed_train(
                cases, Path(tmp) / f"store-{n_tracts}x{n_days}", args.origins
            )
            stages = " ".join(f"{k} {v:.0f}" for k, v in outcome["timings"].items())
            print(
                f"{n_tracts:>7}{n_days:>7}{n_tracts * n_days:>10}{seconds:>9.1f}  {stages}"
                f"   {outcome['champion']}",
                flush=True,
            )
    verdict = "within" if seconds <= BUDGET_SECONDS else "OVER"
    print(
        f"full Italy retrain: {seconds:.0f} s, {verdict} the {BUDGET_SECONDS:.0f} s budget "
        f"({os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end)"
    )


if __name__ == "__main__":
    main()
