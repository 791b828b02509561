"""Does refitting pay, whatever the gate decides? The LSTM fitted afresh at every month end
against the first fit frozen, on the final Italy data.

At each month end from `--from` to `--to`, the served recipe (the LSTM of the default settings)
is fitted cold on the data to that day and forecasts the 14 days after it; the first month's fit,
never refitted, forecasts from the same data, as do the previous month's fit and the weekly
seasonal naive. Each is scored by WAPE over every province and the 14 days. With `--seeds 42,7`
the newest fit is also the mean of fits from those seeds (bagging). This is the replay's
served/frozen comparison with the gate taken out: if the recipe refitted every month is not
clearly better than frozen, no gate can make updating pay. About 40 s per month on 2 cores.
    .venv/bin/python -m bench.refits [--from 2021-06-30] [--to 2023-05-31] [--seeds 42]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import add_lstm_option, lstm_changes, run_showing_progress  # noqa: E402
from tractcast import progress  # noqa: E402
from tractcast.evaluation.metrics import wape  # noqa: E402
from tractcast.models.base import Forecaster, make_forecaster  # noqa: E402
from tractcast.settings import Settings  # noqa: E402
from tractcast.workflows.candidates import (  # noqa: E402
    MODEL_FAMILY,
    candidate_forecasters,
    load_inputs,
    series_arrays,
)

ROOT = Path(__file__).resolve().parents[1]
ITALY = ROOT.parent / "shared" / "data" / "italy"
DAYS = 14


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from", dest="start", default="2021-06-30")
    parser.add_argument("--to", dest="end", default="2023-05-31")
    parser.add_argument("--seeds", default="42", help="comma-separated; more than one: bagging")
    add_lstm_option(parser)  # the frozen fit's too, as a replay would have it
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    settings = Settings(
        data_source=str(ITALY / "cases_provinces.csv.gz"), tracts=str(ITALY / "provinces.geojson")
    )
    _, ingested = load_inputs(settings)
    arrays = series_arrays(ingested)
    history, observed = arrays.history, arrays.observed
    ends = pd.date_range(args.start, args.end, freq="ME")

    changes = lstm_changes(
        parser, args, candidate_forecasters(settings, arrays.first_weekday)[MODEL_FAMILY]
    )

    def fitted(day: pd.Timestamp, seed: int, **params: float | int) -> Forecaster:
        lstm = candidate_forecasters(settings.with_(seed=seed), arrays.first_weekday)
        for key, value in params.items():
            setattr(lstm[MODEL_FAMILY], key, value)
        lstm[MODEL_FAMILY].fit(history[:, : cut(day)])
        return lstm[MODEL_FAMILY]

    def cut(day: pd.Timestamp) -> int:
        return int(arrays.dates.searchsorted(day, side="right"))

    progress.begin("refits", len(ends), "cold fits at each month end")
    progress.advance("refits", f"{ends[0]:%Y-%m-%d} (the frozen fit)")
    frozen = fitted(ends[0], seeds[0], **changes)
    previous = frozen
    naive = make_forecaster("seasonal_naive", horizon=DAYS)
    rows = []
    for day in ends[1:]:
        progress.advance("refits", f"{day:%Y-%m-%d}")
        known = history[:, : cut(day)]
        actual = history[:, cut(day) : cut(day) + DAYS]
        scored = observed[:, cut(day) : cut(day) + DAYS]
        if actual.shape[1] < DAYS:
            break
        fits = [fitted(day, seed, **changes) for seed in seeds]
        naive.fit(known)
        points = {
            "newest": fits[0].predict(known).point,
            "frozen": frozen.predict(known).point,
            "previous": previous.predict(known).point,
            "seasonal naive": naive.predict(known).point,
        }
        if len(seeds) > 1:
            points["bagged"] = np.mean([fit.predict(known).point for fit in fits], axis=0)
        rows.append(
            {"data to": f"{day:%Y-%m-%d}"}
            | {name: wape(actual, point, scored) for name, point in points.items()}
        )
        previous = fits[0]
    table = pd.DataFrame(rows).set_index("data to")
    print(f"\nWAPE over the {DAYS} days after each month end (Italy, {history.shape[0]} provinces)")
    print(table.to_string(float_format="{:.3f}".format))
    worst = table["newest"].idxmax()
    parts = [("all", table), (f"without {worst}", table.drop(index=worst))]
    for label, part in parts[: 1 + (len(table) > 1)]:
        means = part.mean()
        ratios = " ".join(f"{name} {means[name] / means['frozen']:.3f}" for name in part.columns)
        print(f"mean over {len(part)} releases ({label}): / frozen: {ratios}")


if __name__ == "__main__":
    run_showing_progress(main)
