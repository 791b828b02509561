"""Benchmarks: each module's main prints its figures (`python -m bench.NAME`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tractcast import progress

ROOT = Path(__file__).resolve().parents[1]


def run_showing_progress(main: Callable[[], object]) -> None:
    """Run a benchmark that trains in this process: progress on stderr, TensorFlow's C++ log
    lines in var/run/logs/tensorflow.log (as `tractcast train` does)."""
    progress.divert_native_stderr(ROOT / "var" / "run" / "logs" / "tensorflow.log")
    with progress.showing():
        main()


def add_lstm_option(parser: argparse.ArgumentParser) -> None:
    """--set PARAM=VALUE (repeatable): an LSTM parameter of the recipe, as a variant to measure."""
    parser.add_argument(
        "--set", action="append", default=[], metavar="PARAM=VALUE",
        help="an LSTM parameter of the recipe, e.g. level_weight=0 (repeatable)",
    )  # fmt: skip


def lstm_changes(
    parser: argparse.ArgumentParser, args: argparse.Namespace, lstm: Any
) -> dict[str, float | int]:
    """The --set pairs as parameters of `lstm`; an unknown name is the parser's error."""
    changes = {key: number(value) for key, value in (pair.split("=", 1) for pair in args.set)}
    for key in set(changes) - set(lstm.params()):
        parser.error(f"the LSTM has no parameter {key}")
    return changes


def number(text: str) -> float | int:
    """A parameter's value as given: 16 is an int (units, epochs), 0.25 a float."""
    return int(text) if text.lstrip("-").isdigit() else float(text)
