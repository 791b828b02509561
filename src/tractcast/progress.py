"""What long work is doing and how far along it is, for a person watching a terminal or a log.

Work reports where it is with `begin`, `advance` and `detail`; nothing is shown unless a display
is installed with `showing` (the CLI and the benchmarks install one, library callers do not).
On a terminal the display is one line redrawn in place; elsewhere it is one plain line per step.
`divert_native_stderr` keeps TensorFlow's C++ log lines out of both, in a file of their own.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Display:
    """Renders stages as `stage done/total detail`, redrawn in place when `live`."""

    stream: TextIO
    live: bool
    stage: str = ""
    done: int = 0
    total: int = 0
    text: str = ""
    sub: str = ""
    started: float = field(default_factory=time.monotonic)
    stage_started: float = field(default_factory=time.monotonic)

    def begin(self, stage: str, total: int, text: str) -> None:
        self.finish()
        self.stage, self.done, self.total, self.text, self.sub = stage, 0, total, text, ""
        self.stage_started = time.monotonic()
        self.show(final=not self.live)

    def advance(self, stage: str, text: str) -> None:
        if stage != self.stage:
            self.begin(stage, 0, "")
        self.done += 1
        self.text, self.sub = text, ""
        self.show(final=not self.live)

    def detail(self, sub: str) -> None:
        self.sub = sub
        if self.live:  # a log gets the steps, not every epoch of every fit
            self.show(final=False)

    def finish(self) -> None:
        if self.stage and self.live:
            self.show(final=True)
        self.stage = ""

    def show(self, final: bool) -> None:
        count = f" {self.done}/{self.total}" if self.total else ""
        seconds = time.monotonic() - self.started
        parts = [f"[{seconds:5.0f} s] {self.stage}{count}", self.text, self.sub]
        line = "  ".join(p for p in parts if p)
        if self.live:
            width = _columns() - 1
            self.stream.write("\r" + line[:width].ljust(width) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


_display: ContextVar[Display | None] = ContextVar("tractcast_progress", default=None)


def begin(stage: str, total: int = 0, text: str = "") -> None:
    """A stage starts: `total` steps (0 when unknown), and what it works on."""
    display = _display.get()
    if display is not None:
        display.begin(stage, total, text)


def advance(stage: str, text: str = "") -> None:
    """The next step of the stage starts; `text` says what it works on."""
    display = _display.get()
    if display is not None:
        display.advance(stage, text)


def detail(text: str) -> None:
    """Where the current step is (an epoch of a fit); shown live, not logged."""
    display = _display.get()
    if display is not None:
        display.detail(text)


@contextmanager
def showing(stream: TextIO | None = None, live: bool | None = None) -> Iterator[Display]:
    """Show progress on stream (stderr by default), live when it is a terminal."""
    stream = stream or sys.stderr
    if live is None:
        live = stream.isatty() and os.environ.get("TERM", "") != "dumb"
    display = Display(stream, live)
    token = _display.set(display)
    try:
        yield display
    finally:
        display.finish()
        _display.reset(token)


def divert_native_stderr(log_file: Path) -> None:
    """Send what C libraries write to descriptor 2 into log_file; Python's stderr stays put.

    TensorFlow's C++ runtime prints notices straight to descriptor 2 (oneDNN, NodeDef
    attributes), past every Python logging setting. Python's own warnings and tracebacks keep
    going to the original stderr through a duplicate of it.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    original = os.dup(2)
    sys.stderr = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)
    os.close(target)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Keras's advice on file formats comes through absl's Python logger, once per saved model.
    logging.getLogger("absl").setLevel(logging.ERROR)


def _columns() -> int:
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns if columns >= 40 else 100  # a pseudo-terminal may report none
