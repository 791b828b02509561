"""Rolling-origin backtest on the Italy data: 12 origins spread over 2021-2024, every candidate.

Each origin refits every candidate on the days before it only and scores the 14 days from it.
Prints the per-candidate metrics, the champion the gate would serve (best robust relative WIS),
every candidate's relative MAE, relative WIS and coverage per horizon and per origin, and the
served champion against the goals: relative MAE <= 0.95 at horizon 1, none above 1.0, <= 0.70
averaged; relative WIS <= 0.70; 80% coverage 0.75-0.85 pooled and 0.65-0.95 at every origin.
    .venv/bin/python -m bench.backtest [--origins 12] [--from 2021-01-01] [--to 2024-12-18]
        [--set PARAM=VALUE]   (an LSTM variant, e.g. level_weight=0)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import add_lstm_option, lstm_changes, run_showing_progress
from tractcast.evaluation.backtest import origins_between, report_table, run_backtest  # noqa: E402
from tractcast.evaluation.gate import choose_candidate  # noqa: E402
from tractcast.jsonsafe import json_safe  # noqa: E402
from tractcast.models.base import BASELINE_FAMILIES  # noqa: E402
from tractcast.settings import Settings  # noqa: E402
from tractcast.workflows.candidates import (  # noqa: E402
    MODEL_FAMILY,
    REPORT_KEYS,
    candidate_forecasters,
    iso_day,
    load_inputs,
    series_arrays,
)

ROOT = Path(__file__).resolve().parents[1]
ITALY = ROOT.parent / "shared" / "data" / "italy"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--origins", type=int, default=12)
    parser.add_argument("--from", dest="start", default="2021-01-01")
    parser.add_argument("--to", dest="end", default="2024-12-18")
    parser.add_argument("--epochs", type=int, default=None, help="default: the settings' 30")
    add_lstm_option(parser)
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
    for key, value in lstm_changes(parser, args, candidates[MODEL_FAMILY]).items():
        setattr(candidates[MODEL_FAMILY], key, value)
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
    print_goals(champion, backtest.scores, [iso_day(arrays.dates, o) for o in backtest.origins])
    print(
        f"time: ingest {loaded - started:.0f} s, backtest {finished - loaded:.0f} s "
        f"({os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end)"
    )


def print_goals(champion: str, scores: dict, days: list[str]) -> None:
    """Per horizon and per origin figures of every candidate; the served one against the goals."""
    for name, one in scores.items():
        print(f"{name}:")
        for key in ("relative_mae", "relative_wis", "coverage"):
            cells = " ".join(f"{day[key]:.2f}" for day in one["per_horizon"])
            print(f"  per horizon {key:<13} {cells}")
        for key in ("relative_mae", "relative_wis", "coverage"):
            cells = " ".join(f"{entry[key]:.2f}" for entry in one["per_origin"])
            print(f"  per origin  {key:<13} {cells}")
    served = scores[champion]
    horizons = [day["relative_mae"] for day in served["per_horizon"]]
    goals = [
        ("relative MAE at horizon 1 <= 0.95", horizons[0], horizons[0] <= 0.95),
        ("no horizon's relative MAE > 1.0", max(horizons), max(horizons) <= 1.0),
        ("relative MAE, mean over 1-14 <= 0.70", served["relative_mae"],
         served["relative_mae"] <= 0.70),
        ("relative WIS <= 0.70", served["relative_wis"], served["relative_wis"] <= 0.70),
        ("80% coverage pooled in 0.75-0.85", served["coverage"],
         0.75 <= served["coverage"] <= 0.85),
        ("80% coverage per origin in 0.65-0.95 (min)", served["coverage_min"],
         served["coverage_min"] >= 0.65),
        ("80% coverage per origin in 0.65-0.95 (max)", served["coverage_max"],
         served["coverage_max"] <= 0.95),
    ]  # fmt: skip
    print(f"served champion {champion} (origins {days[0]} .. {days[-1]}):")
    print(
        f"  robust relative MAE {served['robust_relative_mae']:.3f}, robust relative WIS "
        f"{served['robust_relative_wis']:.3f}, 50%/95% coverage "
        f"{served.get('coverage_50', 0):.3f}/{served.get('coverage_95', 0):.3f}"
    )
    for text, value, met in goals:
        print(f"  {'met ' if met else 'MISS'} {text}: {value:.3f}")


if __name__ == "__main__":
    run_showing_progress(main)
