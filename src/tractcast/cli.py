"""The `tractcast` command line (ingest, train, backtest, forecast, versions, promote, ...)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tractcast.errors import TractcastError
from tractcast.settings import Settings
from tractcast.tract_layers import settings_of_layer

Command = Callable[[argparse.Namespace, Settings], Any]


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Ingest SOURCE against the tract layer; write series.parquet and report.json."""
    from tractcast.data.ingest import ingest_options, ingest_source
    from tractcast.data.series import write_series
    from tractcast.geo.index import TractIndex

    overrides = {
        "date_column": args.date_column,
        "tract_column": args.tract_column,
        "value_column": args.value_column,
        "value_kind": args.value_kind,
        "coordinate_columns": args.coordinates,
    }
    options = ingest_options(
        settings.with_(**{k: v for k, v in overrides.items() if v is not None})
    )
    index = TractIndex.from_file(args.tracts, id_field=args.id_field or settings.tract_id_field)
    result = ingest_source(args.source, index, **options)
    out = Path(args.out)
    write_series(result, out)
    summary_keys = (
        "format", "date_column", "tract_column", "value_column", "value_kind",
        "tracts_matched", "tracts_unmatched", "days", "start", "end",
        "rows_read", "rows_quarantined", "quarantine_reasons",
        "files", "unmatched_total", "days_imputed",
    )  # fmt: skip
    summary = {k: result.report.get(k) for k in summary_keys}
    return {
        "data_version": result.data_version,
        "out": str(out),
        **summary,
        **choices(result.report),
    }


def choices(report: dict[str, Any]) -> dict[str, Any]:
    """What ingestion chose and why: the date source, the relations between the count columns,
    the columns set aside, the categories kept, a stopped feed."""
    date = report.get("evidence", {}).get("date", {})
    value = report.get("evidence", {}).get("value", {})
    return {
        "date_source": {
            "column": report.get("date_column"),
            "role": date.get("source", "date"),
            "other_dates": date.get("other_dates", {}),
            "disagreement": date.get("disagreement"),
        },
        "relations": value.get("relations", []),
        "columns_set_aside": value.get("rejected", {}),
        "categories": report.get("evidence", {}).get("categories", []),
        "stale": report.get("stale"),
    }


def cmd_accept_data(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Accept a held data release: pin its schema; the next retrain uses it."""
    from tractcast.registry import Registry
    from tractcast.workflows.releases import watcher_for

    registry = Registry.open(settings)
    event = registry.accept_data_release(watcher_for(settings), args.data_version, trigger="cli")
    return dataclasses.asdict(event)


def cmd_train(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Backtest and register every candidate; the best serves if it passes the promotion gate."""
    from tractcast.workflows.retrain import retrain

    return dataclasses.asdict(retrain(settings, trigger=args.trigger))


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> dict[str, Any] | str:
    """Rolling-origin backtest of the LSTM and the baselines; nothing is registered."""
    from tractcast.evaluation.backtest import report_table
    from tractcast.workflows.candidates import backtest_report

    report = backtest_report(settings, args.origins, getattr(args, "from"), args.to)
    return report if args.json else report_table(report)


def cmd_forecast(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The serving answer for one point, read from the store without any service running."""
    from tractcast.data.demo import resolve_inputs
    from tractcast.errors import NotFound
    from tractcast.geo.index import TractIndex
    from tractcast.registry import RegistryReader
    from tractcast.serving.answers import forecast_answer
    from tractcast.serving.holder import BundleHolder
    from tractcast.validation import parse_coordinate, parse_horizon

    lat, lon = parse_coordinate(args.lat, args.lon)
    _, tracts = resolve_inputs(settings)
    tract = TractIndex.from_file(tracts, id_field=settings.tract_id_field).tract_for_point(lat, lon)
    if tract is None:
        raise NotFound(f"no tract contains the point ({lat}, {lon})")
    return forecast_answer(
        BundleHolder(RegistryReader(settings.store)).bundle(), tract, parse_horizon(args.horizon)
    )


def cmd_versions(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Every registered version with its metrics, and which one serves."""
    from tractcast.registry import Registry

    registry = Registry.open(settings)
    serving = registry.serving_version()
    return {
        "current": serving,
        "versions": [
            {
                "version": v.version,
                "family": v.family,
                "created_at": v.created_at,
                "data_version": v.data_version,
                "serving": v.version == serving,
                "mae": v.metrics.get("mae"),
                "wape": v.metrics.get("wape"),
                "relative_mae": v.metrics.get("relative_mae"),
                "coverage": v.metrics.get("coverage"),
            }
            for v in registry.list_versions()
        ],
    }


def cmd_promote(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Make VERSION serve."""
    from tractcast.registry import Registry

    event = Registry.open(settings).promote(args.version, reason=args.reason, trigger="cli")
    return dataclasses.asdict(event)


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Serve the previous champion again (or --to VERSION)."""
    from tractcast.registry import Registry

    event = Registry.open(settings).rollback(args.to, reason=args.reason, trigger="cli")
    return dataclasses.asdict(event)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Start (or --stop) geo, registry, api, retrainer and nginx on this machine."""
    from tractcast import runner

    if args.stop:
        stopped = runner.stop_stack(Path(settings.run_dir))
        print(f"stopped {stopped} process(es)")
        return 0
    return runner.serve_forever(settings, train_if_empty=not args.no_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tractcast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, layered: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(func.__doc__ or "").strip(), description=func.__doc__)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if layered:
            p.add_argument(
                "--layer", help="the tract layer (of TRACTCAST_LAYERS) to work on; one: optional"
            )
        p.set_defaults(func=func, layer=None, layered=layered)
        return p

    p = add("ingest", cmd_ingest)
    p.add_argument("source", help="case data: file, directory, glob, http(s):// URL or s3:// URI")
    p.add_argument(
        "--tracts", required=True, help="tract layer (GeoJSON, TopoJSON, Shapefile, GPKG)"
    )
    p.add_argument("--id-field", help="layer property to use as tract id")
    p.add_argument("--out", default="var/ingest", help="output directory")
    p.add_argument("--date-column", help="column holding the date (default: inferred)")
    p.add_argument("--tract-column", help="column naming the tract (default: inferred)")
    p.add_argument("--value-column", help="column holding the counts (default: inferred)")
    p.add_argument("--value-kind", choices=("cumulative", "daily"), help="default: inferred")
    p.add_argument("--coordinates", help="'LAT,LON' columns to map to tracts (default: inferred)")

    p = add("accept-data", cmd_accept_data, layered=True)
    p.add_argument("data_version", help="the held release (its data version, see the events)")

    p = add("train", cmd_train, layered=True)
    p.add_argument("--trigger", default="manual", help="recorded as what triggered the run")

    p = add("backtest", cmd_backtest, layered=True)
    p.add_argument("--origins", type=int, default=None, help="number of origins (default: 4)")
    p.add_argument("--from", default=None, help="first origin, YYYY-MM-DD")
    p.add_argument("--to", default=None, help="last origin, YYYY-MM-DD (default: the latest)")

    p = add("forecast", cmd_forecast, layered=True)
    p.add_argument("--lat", required=True)
    p.add_argument("--lon", required=True)
    p.add_argument("--horizon", default=None)

    add("versions", cmd_versions, layered=True)

    p = add("promote", cmd_promote, layered=True)
    p.add_argument("version")
    p.add_argument("--reason", default="promoted from the command line")

    p = add("rollback", cmd_rollback, layered=True)
    p.add_argument("--to", default=None, help="version to serve (default: the previous champion)")
    p.add_argument("--reason", default="rolled back from the command line")

    p = add("serve", cmd_serve)
    p.add_argument("--no-train", action="store_true", help="do not train when the store is empty")
    p.add_argument("--stop", action="store_true", help="stop a running stack (make down)")
    return parser


def run_with_progress(args: argparse.Namespace, settings: Settings) -> Any:
    """Run a long command showing its progress on stderr; stdout keeps only the result."""
    from tractcast import progress

    native_log = Path(settings.run_dir).resolve() / "logs" / "tensorflow.log"
    progress.divert_native_stderr(native_log)
    with progress.showing():
        return args.func(args, settings)


def print_result(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    if isinstance(result, dict):
        for key, value in result.items():
            shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
            print(f"{key}: {shown}")
    else:
        print(result)


#: Commands that load TensorFlow and work for minutes: they show their progress on a console.
LONG_COMMANDS = ("train", "backtest")


def console_main() -> int:
    """The `tractcast` program: `main` with progress shown and TensorFlow's C++ noise in a log."""
    return main(console=True)


def main(
    argv: Sequence[str] | None = None, settings: Settings | None = None, console: bool = False
) -> int:
    args = build_parser().parse_args(argv)
    settings = settings or Settings.from_env()
    try:
        if args.layered:  # the named layer's settings (store, source, tracts ...)
            settings = settings_of_layer(settings, args.layer)
        if console and args.command in LONG_COMMANDS:
            result = run_with_progress(args, settings)
        else:
            result = args.func(args, settings)
    except TractcastError as exc:
        if args.json:
            print(json.dumps(exc.to_dict()), file=sys.stderr)
        else:
            print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return int(result)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(console_main())
