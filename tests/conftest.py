"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "italy"


@pytest.fixture(scope="session")
def italy_dir() -> Path:
    """The real Italy data beside the project (../shared/data/italy)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"the shared Italy data is missing at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def italy_cases(italy_dir: Path) -> Path:
    return italy_dir / "cases_provinces.csv.gz"


@pytest.fixture(scope="session")
def italy_provinces(italy_dir: Path) -> Path:
    return italy_dir / "provinces.geojson"
