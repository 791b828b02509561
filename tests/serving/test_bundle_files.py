"""Serving bundles on disk: written with a checksum, refused when anything is off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tractcast.errors import InvalidInput, Unavailable
from tractcast.serving.bundle import (
    Bundle,
    ForecastDay,
    TractForecast,
    bundle_id_for,
    load_bundle,
    write_bundle,
)


def make_bundle(tracts: int = 3, horizon: int = 14, value: float = 2.5) -> Bundle:
    days = tuple(
        ForecastDay(f"2024-01-{d:02d}", value, value - 1, value + 1) for d in range(1, horizon + 1)
    )
    return Bundle(
        bundle_id=bundle_id_for("v0001-lstm", "d1"),
        model_version="v0001-lstm",
        data_version="d1",
        as_of="2023-12-31",
        created_at="2024-01-01T00:00:00+00:00",
        horizon=horizon,
        tracts={
            f"T{i}": TractForecast(f"T{i}", "2023-12-31", 10 * i, i, days) for i in range(tracts)
        },
    )


def rewrite(directory: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Change bundle.json and fix its checksum, so only the structure checks can catch it."""
    import hashlib

    raw = json.loads((directory / "bundle.json").read_text())
    edit(raw)
    data = json.dumps(raw).encode()
    (directory / "bundle.json").write_bytes(data)
    (directory / "bundle.sha256").write_text(hashlib.sha256(data).hexdigest())


def test_bundle_id_joins_version_and_data_version() -> None:
    assert bundle_id_for("v0003-lstm", "abc123") == "v0003-lstm@abc123"


def test_written_bundle_loads_back_equal(tmp_path: Path) -> None:
    bundle = make_bundle()
    write_bundle(bundle, tmp_path / "b")
    assert load_bundle(tmp_path / "b") == bundle
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bundle.json", "bundle.sha256"]


def test_write_refuses_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        write_bundle(make_bundle(), tmp_path / "b")


def test_write_refuses_non_finite_numbers(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        write_bundle(make_bundle(value=float("nan")), tmp_path / "b")


def test_flipped_byte_is_corrupt(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    path = tmp_path / "b" / "bundle.json"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(Unavailable, match="corrupt: checksum mismatch"):
        load_bundle(tmp_path / "b")


def test_truncated_bundle_is_corrupt(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    path = tmp_path / "b" / "bundle.json"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(Unavailable, match="corrupt"):
        load_bundle(tmp_path / "b")


def test_missing_bundle_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="corrupt"):
        load_bundle(tmp_path / "nowhere")


def test_short_forecast_is_corrupt_even_with_a_good_checksum(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    rewrite(tmp_path / "b", lambda raw: raw["tracts"]["T1"]["forecast"].pop())
    with pytest.raises(Unavailable, match="T1 has 13 forecast days, expected 14"):
        load_bundle(tmp_path / "b")


def test_non_finite_number_is_corrupt_even_with_a_good_checksum(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    rewrite(tmp_path / "b", lambda raw: raw["tracts"]["T0"]["forecast"][0].__setitem__(1, 1e999))
    with pytest.raises(Unavailable, match="non-finite"):
        load_bundle(tmp_path / "b")


def test_missing_field_is_corrupt(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    rewrite(tmp_path / "b", lambda raw: raw.pop("as_of"))
    with pytest.raises(Unavailable, match="missing field 'as_of'"):
        load_bundle(tmp_path / "b")


def test_a_municipality_sized_bundle_round_trips_intact(tmp_path: Path) -> None:
    bundle = make_bundle(tracts=8000)
    write_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert len(loaded.tracts) == 8000
    assert loaded.tracts == bundle.tracts


def with_bands(bundle: Bundle) -> Bundle:
    """The bundle with 50% and 95% intervals on every forecast day."""
    tracts = {
        tract_id: TractForecast(
            tract.tract_id, tract.as_of, tract.total_cases, tract.new_cases,
            tuple(
                ForecastDay(d.date, d.new_cases, d.lower, d.upper,
                            ((0.5, d.lower + 0.5, d.upper - 0.5), (0.95, 0.0, d.upper + 3)))
                for d in tract.forecast
            ),
        )
        for tract_id, tract in bundle.tracts.items()
    }  # fmt: skip
    return Bundle(
        bundle.bundle_id, bundle.model_version, bundle.data_version, bundle.as_of,
        bundle.created_at, bundle.horizon, tracts,
    )  # fmt: skip


def test_a_bundle_with_every_interval_loads_back_equal(tmp_path: Path) -> None:
    bundle = with_bands(make_bundle())
    write_bundle(bundle, tmp_path / "b")
    assert load_bundle(tmp_path / "b") == bundle
    raw = json.loads((tmp_path / "b" / "bundle.json").read_text())
    # the old four-column rows are kept; the other intervals sit beside them
    assert len(raw["tracts"]["T1"]["forecast"][0]) == 4
    assert set(raw["tracts"]["T1"]["intervals"]) == {"0.5", "0.95"}


def test_a_bundle_written_before_the_extra_intervals_still_loads(tmp_path: Path) -> None:
    write_bundle(with_bands(make_bundle()), tmp_path / "b")
    rewrite(tmp_path / "b", lambda raw: [t.pop("intervals") for t in raw["tracts"].values()])
    loaded = load_bundle(tmp_path / "b")
    assert loaded == make_bundle() and loaded.tracts["T0"].forecast[0].bands == ()


def test_an_interval_with_days_missing_is_corrupt(tmp_path: Path) -> None:
    write_bundle(with_bands(make_bundle()), tmp_path / "b")
    rewrite(tmp_path / "b", lambda raw: raw["tracts"]["T0"]["intervals"]["0.5"].pop())
    with pytest.raises(Unavailable, match="days of the 0.5 interval"):
        load_bundle(tmp_path / "b")


def test_tracts_that_differ_in_every_field_load_back_exactly(tmp_path: Path) -> None:
    """A loaded bundle keeps tracts in arrays: each tract's own days, bands and history."""
    banded = with_bands(make_bundle(tracts=2))
    plain = make_bundle(tracts=4, value=7.25)
    tracts = {
        "T0": banded.tracts["T0"],  # 50% and 95% intervals
        "T1": TractForecast("T1", "2023-12-30", 5, 0, plain.tracts["T1"].forecast, (3, 0, 2)),
        "Z9": TractForecast(
            "Z9",
            "2023-12-29",
            2**40,
            12,
            tuple(ForecastDay(f"2024-02-{d:02d}", d / 3, 0.0, d + 0.1) for d in range(1, 15)),
            tuple(range(200)),
        ),  # fmt: skip
        "T3": plain.tracts["T3"],  # no history, no extra interval
    }
    bundle = Bundle(
        banded.bundle_id, banded.model_version, banded.data_version, banded.as_of,
        banded.created_at, 14, tracts,
    )  # fmt: skip
    write_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert list(loaded.tracts) == ["T0", "T1", "Z9", "T3"]
    assert {tract_id: loaded.tracts[tract_id] for tract_id in tracts} == tracts
    assert "T2" not in loaded.tracts and loaded.tracts.get("T2") is None
    assert loaded.tracts["Z9"].total_cases == 2**40 and loaded.tracts["Z9"].history[-1] == 199
    assert loaded.tracts["T3"].forecast[0].bands == () and loaded.tracts["T3"].history == ()
