"""Rolling-origin backtest on the Italy data: 12 origins spread over 2021-2024, every candidate.

Each origin refits every candidate on the days before it only and scores the 14 days from it.
Prints the per-candidate metrics, the champion the gate would serve, its MAE relative to the
weekly seasonal naive averaged over horizons 1-14 (target <= 0.8), its 80% interval coverage
(target 75-85%), and the same per origin and per horizon.
    .venv/bin/python -m bench.backtest [--origins 12] [--from 2021-01-01] [--to 2024-12-18]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tractcast.evaluation.backtest import origins_between, report_table, run_backtest  # noqa: E402
from tractcast.evaluation.gate import choose_candidate  # noqa: E402
from tractcast.models.base import BASELINE_FAMILIES  # noqa: E402
from tractcast.pipeline import (  # noqa: E402
    REPORT_KEYS,
    candidate_forecasters,
    iso_day,
    json_safe,
    load_inputs,
    series_arrays,
)
from tractcast.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ITALY = ROOT.parent / "shared" / "data" / "italy"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--origins", type=int, default=12)
    parser.add_argument("--from", dest="start", default="2021-01-01")
    parser.add_argument("--to", dest="end", default="2024-12-18")
    parser.add_argument("--epochs", type=int, default=None, help="default: the settings' 30")
    args = parser.parse_args()
    settings = Settings(
        data_source=str(ITALY / "cases_provinces.csv.gz"), tracts=str(ITALY / "provinces.geojson")
    )
    if args.epochs:
        settings = settings.with_(epochs=args.epochs)

    started = time.monotonic()
    _, ingested = load_inputs(settings)
    arrays = series_arrays(ingested)
    candidates = candidate_forecasters(settings, arrays.first_weekday)
    origins = origins_between(arrays.dates, args.origins, args.start, args.end, settings.horizon)
    loaded = time.monotonic()
    backtest = run_backtest(
        arrays.history, candidates, origins, horizon=settings.horizon, mask=arrays.observed
    )
    finished = time.monotonic()

    champion = choose_candidate(backtest.scores, BASELINE_FAMILIES)
    report = json_safe(
        {
            "champion": champion,
            "origins": [iso_day(arrays.dates, origin) for origin in backtest.origins],
            "candidates": {
                name: {key: scores[key] for key in REPORT_KEYS}
                for name, scores in backtest.scores.items()
            },
        }
    )
    n_tracts, n_days = arrays.history.shape
    print(f"Italy: {n_tracts} provinces x {n_days} days, {len(origins)} origins, horizon 14")
    print(report_table(report))
    served = backtest.scores[champion]
    print(
        f"served champion {champion}: relative MAE (mean over horizons 1-14) "
        f"{served['relative_mae']:.3f} (target <= 0.8); 80% interval coverage "
        f"{served['coverage']:.3f} (target 0.75-0.85)"
    )
    print("per horizon, relative MAE: " + " ".join(
        f"{day['relative_mae']:.2f}" for day in served["per_horizon"]
    ))  # fmt: skip
    print("per horizon, coverage:     " + " ".join(
        f"{day['coverage']:.2f}" for day in served["per_horizon"]
    ))  # fmt: skip
    print(f"per origin ({champion}):")
    print(f"  {'origin':<12}{'MAE':>10}{'sn. MAE':>10}{'rel. MAE':>10}{'WAPE':>8}{'cover':>8}")
    reference = backtest.scores.get("seasonal_naive", {}).get("per_origin")
    for k, entry in enumerate(served["per_origin"]):
        naive = reference[k]["mae"] if reference else float("nan")
        print(
            f"  {iso_day(arrays.dates, entry['origin']):<12}{entry['mae']:>10.1f}{naive:>10.1f}"
            f"{entry['mae'] / naive:>10.2f}{entry['wape']:>8.3f}{entry['coverage']:>8.3f}"
        )
    print(
        f"time: ingest {loaded - started:.0f} s, backtest {finished - loaded:.0f} s "
        f"({os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end)"
    )


if __name__ == "__main__":
    main()
