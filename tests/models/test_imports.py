"""Importing the core model and evaluation modules must not load TensorFlow."""

from __future__ import annotations

import subprocess
import sys


def test_importing_models_and_baselines_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "import tractcast.models, tractcast.models.baselines\n"
        "import tractcast.evaluation.metrics, tractcast.evaluation.backtest\n"
        "import tractcast.evaluation.gate, tractcast.workflows.retrain\n"
        "from tractcast.models import make_forecaster\n"
        "make_forecaster('persistence')\n"
        "loaded = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
