"""The layers of STYLE.md rule 14 hold: import-linter's contracts in pyproject.toml are kept,
every package is placed in a layer, and an import that breaks a layer is caught."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import services
import tractcast

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def layered(contract: dict) -> set[str]:
    return {name.strip() for layer in contract["layers"] for name in layer.split("|")}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports over the tractcast and services packages found under `root`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_are_kept() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_package_of_tractcast_and_services_sits_in_a_layer() -> None:
    found = contracts()
    core = {module.name for module in pkgutil.iter_modules(tractcast.__path__)}
    apps = {module.name for module in pkgutil.iter_modules(services.__path__)}
    assert layered(found["core-layers"]) == core
    assert layered(found["services-apart"]) == apps
    assert found["core-layers"]["exhaustive"] and found["services-apart"]["exhaustive"]
    assert found["no-cycles"]["ancestors"] == ["tractcast", "services"]


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("src/tractcast/registry/store.py", "import tractcast.workflows.retrain", "Core layers"),
        ("src/tractcast/data/clean.py", "import tractcast.serving.bundle", "Core layers"),
        ("src/tractcast/settings.py", "import services.common.http", "services sit above"),
        ("services/api/views.py", "import services.registry.views", "Services never import"),
        ("services/geo/views.py", "import tractcast.models.lstm", "never import TensorFlow"),
        ("src/tractcast/data/series.py", "import tractcast.data.ingest", "No import cycles"),
    ],
)
def test_an_import_against_the_layers_is_caught(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    for part in ("src/tractcast", "services"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as handle:
        handle.write(f"\n{line}  # noqa\n")

    done = lint_imports(tmp_path)

    assert done.returncode != 0
    broken_section = done.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section, done.stdout
