"""The bundled synthetic demo data: 16 fictional tracts, epidemic waves, a few messy rows."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tractcast.settings import Settings

CASES_FILE = "cases.csv"
TRACTS_FILE = "tracts.geojson"
DEMO_START = "2023-01-02"
GRID_ROWS, GRID_COLS = 4, 4
BOUNDS = (44.0, 45.0, 10.0, 11.5)  # south, north, west, east
PSEUDO_AREA = ("unassigned", "Unassigned")
TRACT_NAMES = (
    "Valmora", "Ceresio", "Borgalta", "Pianelle",
    "Roccabruna", "Lumiera", "Castelvento", "Fontebassa",
    "Serralonga", "Montecchio", "Acquaviva", "Pratochiaro",
    "Sassomoro", "Vignale", "Campolargo", "Torrebella",
)  # fmt: skip
WEEKLY_FACTORS = np.array([1.2, 1.1, 1.05, 1.0, 0.95, 0.75, 0.6])  # Monday .. Sunday reporting


def grid_nodes(rng: np.random.Generator, jitter: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes of the grid nodes; inner nodes jittered so cells are square-ish."""
    south, north, west, east = BOUNDS
    lats = np.linspace(south, north, GRID_ROWS + 1)[:, None].repeat(GRID_COLS + 1, axis=1)
    lons = np.linspace(west, east, GRID_COLS + 1)[None, :].repeat(GRID_ROWS + 1, axis=0)
    step_lat, step_lon = (north - south) / GRID_ROWS, (east - west) / GRID_COLS
    inner = (slice(1, GRID_ROWS), slice(1, GRID_COLS))
    lats[inner] += rng.uniform(-jitter, jitter, lats[inner].shape) * step_lat
    lons[inner] += rng.uniform(-jitter, jitter, lons[inner].shape) * step_lon
    return lats, lons


def tract_features(lats: np.ndarray, lons: np.ndarray) -> list[dict[str, Any]]:
    """One GeoJSON polygon feature per grid cell (exterior ring counter-clockwise)."""
    features = []
    for row in range(GRID_ROWS):
        for col in range(GRID_COLS):
            corners = [(row, col), (row, col + 1), (row + 1, col + 1), (row + 1, col), (row, col)]
            ring = [[round(float(lons[r, c]), 6), round(float(lats[r, c]), 6)] for r, c in corners]
            number = row * GRID_COLS + col
            features.append(
                {
                    "type": "Feature",
                    "properties": {"area_code": f"T{number + 1:02d}", "name": TRACT_NAMES[number]},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
    return features


def expected_daily_cases(rng: np.random.Generator, n_days: int) -> np.ndarray:
    """Expected new cases (n_tracts, n_days): shared waves, lagged west to east, weekly pattern."""
    n_tracts = GRID_ROWS * GRID_COLS
    days = np.arange(n_days)
    population = rng.lognormal(np.log(150_000), 0.6, n_tracts)
    n_waves = max(2, n_days // 90)
    centres = np.linspace(40, n_days - 30, n_waves) + rng.uniform(-15, 15, n_waves)
    widths = rng.uniform(10, 22, n_waves)
    heights = rng.uniform(25, 90, n_waves)  # daily cases per 100k at the peak
    cols = np.arange(n_tracts) % GRID_COLS
    rows = np.arange(n_tracts) // GRID_COLS
    lags = 4 * cols + 2 * rows + rng.uniform(0, 3, n_tracts)
    amplitude = rng.uniform(0.6, 1.4, (n_tracts, n_waves))
    shifted = days[None, :, None] - lags[:, None, None] - centres[None, None, :]
    waves = amplitude[:, None, :] * heights * np.exp(-0.5 * (shifted / widths) ** 2)
    incidence = 3.0 + waves.sum(axis=2)
    weekday = (pd.Timestamp(DEMO_START).dayofweek + days) % 7
    return population[:, None] / 1e5 * incidence * WEEKLY_FACTORS[weekday][None, :]


def observed_cumulative(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Cumulative counts from negative-binomial draws around the expected daily cases."""
    dispersion = 15.0
    rates = expected * rng.gamma(dispersion, 1 / dispersion, expected.shape)
    return np.cumsum(rng.poisson(rates), axis=1)


def add_correction(cumulative: np.ndarray, tract: int, day: int, excess: int = 30) -> np.ndarray:
    """A downward revision: from `day` on, the cumulative drops `excess` below the day before."""
    revised = cumulative.copy()
    drop = revised[tract, day] - revised[tract, day - 1] + excess
    revised[tract, day:] -= drop
    return revised


def demo_rows(rng: np.random.Generator, n_days: int) -> list[str]:
    """CSV lines (with header) of the demo cases, long format, messy rows included."""
    cumulative = observed_cumulative(rng, expected_daily_cases(rng, n_days))
    cumulative = add_correction(cumulative, tract=6, day=min(250, n_days - 1))
    unassigned = np.cumsum(rng.poisson(4.0, n_days))
    dates = pd.date_range(DEMO_START, periods=n_days, freq="D").strftime("%Y-%m-%d")
    missing = (11, min(100, n_days - 1))  # one tract-day left out on purpose
    lines = ["date,area_code,area_name,cumulative_cases"]
    for day, date in enumerate(dates):
        for tract in range(GRID_ROWS * GRID_COLS):
            if (tract, day) == missing:
                continue
            code, name = f"T{tract + 1:02d}", TRACT_NAMES[tract]
            lines.append(f"{date},{code},{name},{int(cumulative[tract, day])}")
        lines.append(f"{date},{PSEUDO_AREA[0]},{PSEUDO_AREA[1]},{int(unassigned[day])}")
    return lines


def write_atomically(path: Path, text: str) -> None:
    """Write text to a temporary file beside path, then rename it into place."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(text)
    os.replace(temporary, path)


def write_demo_data(directory: Path, seed: int = 42, n_days: int = 420) -> tuple[Path, Path]:
    """Write cases.csv and tracts.geojson (deterministic for a seed); return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lats, lons = grid_nodes(rng)
    collection = {"type": "FeatureCollection", "features": tract_features(lats, lons)}
    cases_path, tracts_path = directory / CASES_FILE, directory / TRACTS_FILE
    write_atomically(tracts_path, json.dumps(collection, indent=1) + "\n")
    write_atomically(cases_path, "\n".join(demo_rows(rng, n_days)) + "\n")
    return cases_path, tracts_path


def ensure_demo_data(settings: Settings) -> tuple[Path, Path]:
    """Write the demo data into settings.demo_dir unless it is already there; return its paths."""
    directory = Path(settings.demo_dir)
    cases_path, tracts_path = directory / CASES_FILE, directory / TRACTS_FILE
    if cases_path.is_file() and tracts_path.is_file():
        return cases_path, tracts_path
    return write_demo_data(directory, seed=settings.seed)


def resolve_inputs(settings: Settings) -> tuple[str, str]:
    """(data source, tract layer): the configured pair when both are set, else the demo data."""
    if settings.data_source and settings.tracts:
        return settings.data_source, settings.tracts
    cases_path, tracts_path = ensure_demo_data(settings)
    return str(cases_path), str(tracts_path)
