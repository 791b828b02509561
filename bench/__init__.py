"""Benchmarks: each module's main prints its figures (`python -m bench.NAME`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tractcast import progress

ROOT = Path(__file__).resolve().parents[1]


def run_showing_progress(main: Callable[[], object]) -> None:
    """Run a benchmark that trains in this process: progress on stderr, TensorFlow's C++ log
    lines in var/run/logs/tensorflow.log (as `tractcast train` does)."""
    progress.divert_native_stderr(ROOT / "var" / "run" / "logs" / "tensorflow.log")
    with progress.showing():
        main()
