"""Progress as a person sees it: one redrawn line on a terminal, plain lines in a log."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

from tractcast import progress


def run_stages() -> None:
    progress.begin("backtest", 2, "lstm, persistence")
    progress.advance("backtest", "lstm, origin 1 of 1")
    progress.detail("epoch 1/3 loss 0.5")
    progress.detail("epoch 2/3 loss 0.4")
    progress.advance("backtest", "persistence, origin 1 of 1")
    progress.begin("gate")


def test_a_log_gets_one_plain_line_per_step_and_no_epochs():
    out = io.StringIO()
    with progress.showing(out, live=False):
        run_stages()
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "backtest 0/2  lstm, persistence",
        "backtest 1/2  lstm, origin 1 of 1",
        "backtest 2/2  persistence, origin 1 of 1",
        "gate",
    ]
    assert "\r" not in out.getvalue()


def test_a_terminal_gets_one_line_redrawn_with_the_epoch_and_a_newline_per_stage():
    out = io.StringIO()
    with progress.showing(out, live=True):
        run_stages()
    text = out.getvalue()
    assert "epoch 2/3 loss 0.4" in text
    finished = [line.strip() for line in text.split("\n") if line.strip()]
    assert len(finished) == 2  # the backtest and the gate each end their line
    assert finished[0].rsplit("\r", 1)[-1].endswith("persistence, origin 1 of 1")


def test_nothing_is_shown_without_a_display():
    run_stages()  # library callers install no display: no output, no error


def test_native_writes_to_stderr_go_to_the_log_while_python_errors_stay_visible(tmp_path: Path):
    log = tmp_path / "logs" / "native.log"
    script = textwrap.dedent(
        f"""
        import os, sys
        from tractcast.progress import divert_native_stderr
        from pathlib import Path
        divert_native_stderr(Path({str(log)!r}))
        os.write(2, b"E0000 NodeDef mentions attribute\\n")  # what C++ code does
        print("a python warning", file=sys.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "a python warning" in done.stderr
    assert "NodeDef" not in done.stderr
    assert "E0000 NodeDef mentions attribute" in log.read_text()
