"""Fixtures of the monitoring tests: the demo data released in parts, versions made by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tractcast.data.demo import write_demo_data
from tractcast.models.base import Forecast
from tractcast.monitoring.drift import reference_sample
from tractcast.registry.registry import Registry
from tractcast.serving.build import build_bundle
from tractcast.settings import Settings
from tractcast.workflows.candidates import load_inputs, series_arrays
from tractcast.workflows.registration import git_commit

HORIZON = 14


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """The demo cases as CSV lines (header first) and the demo tract layer."""
    cases, tracts = write_demo_data(tmp_path_factory.mktemp("demo"), n_days=150)
    return cases.read_text().splitlines(), tracts


@dataclass
class Portal:
    """A local file the demo data is released into, a few weeks more at a time."""

    lines: list[str]
    path: Path

    def release(self, last_day: str) -> None:
        kept = [self.lines[0], *(line for line in self.lines[1:] if line[:10] <= last_day)]
        self.path.write_text("\n".join(kept) + "\n")


@pytest.fixture
def portal(demo_files: tuple[list[str], Path], tmp_path: Path) -> Portal:
    return Portal(demo_files[0], tmp_path / "portal" / "cases.csv")


@pytest.fixture
def settings(portal: Portal, demo_files: tuple[list[str], Path], tmp_path: Path) -> Settings:
    portal.path.parent.mkdir(parents=True, exist_ok=True)
    return Settings(
        data_source=str(portal.path),
        tracts=str(demo_files[1]),
        store=tmp_path / "store",
        demo_dir=tmp_path / "demo",
        rollback_days=14,
        rollback_margin=0.1,
        live_error_factor=1.5,
        drift_threshold=0.25,
    )


@dataclass
class Retrains:
    """A stand-in for the retrainer: records what was enqueued, trains nothing."""

    triggers: list[str] = field(default_factory=list)

    def __call__(self, settings: Settings, trigger: str) -> dict[str, str]:
        self.triggers.append(trigger)
        return {"status": "queued", "trigger": trigger}


@pytest.fixture
def retrains() -> Retrains:
    return Retrains()


def weekly_mean(history: np.ndarray) -> np.ndarray:
    """Every tract's mean of its last 7 days, for each of the 14 days ahead."""
    return np.repeat(history[:, -7:].mean(axis=1, keepdims=True), HORIZON, axis=1)


MakeVersion = Callable[..., str]


@pytest.fixture
def make_version(settings: Settings) -> MakeVersion:
    """Register a version trained (by hand) on the newest release, with its bundle.

    `forecast` maps the history to the point forecast; `wape` is its validation WAPE;
    `reference_scale` scales the inputs its drift reference is taken from.
    """

    def make(
        family: str = "persistence",
        forecast: Callable[[np.ndarray], np.ndarray] = weekly_mean,
        wape: float = 0.5,
        reference_scale: float = 1.0,
    ) -> str:
        registry = Registry.open(settings)
        store = registry.store
        _, ingested = load_inputs(settings)
        arrays = series_arrays(ingested)
        manifest = {
            "data_version": ingested.data_version,
            "git_commit": git_commit(),
            "drift_reference": reference_sample(
                arrays.history * reference_scale, arrays.observed, arrays.dates
            ),
        }
        version = registry.register(
            family,
            lambda directory: (directory / "model.json").write_text("{}"),
            metrics={"wape": wape, "mae": 1.0},
            manifest=manifest,
        )
        point = np.clip(forecast(arrays.history), 0.0, None)
        bundle = build_bundle(
            ingested.series,
            arrays.tract_ids,
            Forecast(point, point * 0.5, point * 1.5),
            version.version,
            ingested.data_version,
        )
        store.add_bundle(bundle)
        return version.version

    return make
