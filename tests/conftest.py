"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.faults.processes import claimed_redis_db

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


@pytest.fixture(scope="module")
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of the machine's Redis that the test module has to itself for the run."""
    with claimed_redis_db(request.module.__name__) as url:
        yield url
