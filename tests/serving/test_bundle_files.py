"""Serving bundles on disk: written with a checksum, refused when anything is off.

Format 2 (arrays, written by default) and format 1 (one JSON document, what older versions
wrote and still serve) load back the same bundle."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tractcast.errors import InvalidInput, Unavailable
from tractcast.serving.bundle import (
    ALIGN,
    ARRAYS,
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


FORMATS = [1, 2]


def rewrite(directory: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Change a format 1 bundle.json and fix its checksum, so only the structure checks can
    catch it."""
    raw = json.loads((directory / "bundle.json").read_text())
    edit(raw)
    data = json.dumps(raw).encode()
    (directory / "bundle.json").write_bytes(data)
    (directory / "bundle.sha256").write_text(hashlib.sha256(data).hexdigest())


def replace_file(directory: Path, name: str, data: bytes) -> None:
    """Put other content in a format 2 bundle's file and fix its line of bundle.sha256."""
    (directory / name).write_bytes(data)
    listing = (directory / "bundle.sha256").read_text().splitlines()
    digest = hashlib.sha256(data).hexdigest()
    fixed = [f"{digest}  {name}" if line.endswith(f"  {name}") else line for line in listing]
    (directory / "bundle.sha256").write_text("\n".join(fixed) + "\n")


def load_arrays(directory: Path) -> dict[str, np.ndarray]:
    """A format 2 bundle's arrays, read from tracts.bin at the header's offsets."""
    offsets = json.loads((directory / "bundle.json").read_text())["arrays"]
    packed = (directory / "tracts.bin").read_bytes()
    return {
        name: np.load(io.BytesIO(packed[offsets[name] :]), allow_pickle=False) for name in ARRAYS
    }


def replace_array(
    directory: Path, name: str, array: np.ndarray, allow_pickle: bool = False
) -> None:
    """Put another array in a format 2 bundle's tracts.bin and fix its header and checksums."""
    arrays = {**load_arrays(directory), name: array}
    packed = io.BytesIO()
    offsets = {}
    for each in ARRAYS:
        packed.write(b"\0" * (-packed.tell() % ALIGN))
        offsets[each] = packed.tell()
        np.save(packed, arrays[each], allow_pickle=allow_pickle)
    header = json.loads((directory / "bundle.json").read_text())
    replace_file(directory, "tracts.bin", packed.getvalue())
    replace_file(directory, "bundle.json", json.dumps({**header, "arrays": offsets}).encode())


def test_bundle_id_joins_version_and_data_version() -> None:
    assert bundle_id_for("v0003-lstm", "abc123") == "v0003-lstm@abc123"


def test_written_bundle_loads_back_equal(tmp_path: Path) -> None:
    bundle = make_bundle()
    write_bundle(bundle, tmp_path / "b")
    assert load_bundle(tmp_path / "b") == bundle
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == ["bundle.json", "bundle.sha256", "tracts.bin"]
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["format"] == 2
    listed = (tmp_path / "b" / "bundle.sha256").read_text().split()[1::2]
    assert sorted(listed) == ["bundle.json", "tracts.bin"]
    assert load_arrays(tmp_path / "b")["values"].shape == (3, 14, 3)


def test_a_bundle_written_in_format_1_loads_back_equal(tmp_path: Path) -> None:
    bundle = make_bundle()
    write_bundle(bundle, tmp_path / "b", bundle_format=1)
    assert load_bundle(tmp_path / "b") == bundle
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bundle.json", "bundle.sha256"]
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["format"] == 1


def test_a_loaded_bundle_written_again_is_the_same_bundle(tmp_path: Path) -> None:
    bundle = with_bands(make_bundle())
    write_bundle(bundle, tmp_path / "a", bundle_format=1)
    write_bundle(load_bundle(tmp_path / "a"), tmp_path / "b")
    write_bundle(load_bundle(tmp_path / "b"), tmp_path / "c", bundle_format=1)
    assert load_bundle(tmp_path / "b") == load_bundle(tmp_path / "c") == bundle


def test_write_refuses_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        write_bundle(make_bundle(), tmp_path / "b")


@pytest.mark.parametrize("bundle_format", FORMATS)
def test_write_refuses_non_finite_numbers(tmp_path: Path, bundle_format: int) -> None:
    with pytest.raises(InvalidInput):
        write_bundle(make_bundle(value=float("nan")), tmp_path / "b", bundle_format=bundle_format)
    bands = with_bands(make_bundle(), high=float("inf"))
    with pytest.raises(InvalidInput):
        write_bundle(bands, tmp_path / "c", bundle_format=bundle_format)


FILES = [(1, "bundle.json"), (2, "bundle.json"), (2, "tracts.bin")]


@pytest.mark.parametrize(("bundle_format", "name"), FILES)
def test_flipped_byte_is_corrupt(tmp_path: Path, bundle_format: int, name: str) -> None:
    write_bundle(with_bands(make_bundle()), tmp_path / "b", bundle_format=bundle_format)
    path = tmp_path / "b" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(Unavailable, match="corrupt: checksum mismatch"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize(("bundle_format", "name"), FILES)
def test_truncated_bundle_is_corrupt(tmp_path: Path, bundle_format: int, name: str) -> None:
    write_bundle(with_bands(make_bundle()), tmp_path / "b", bundle_format=bundle_format)
    path = tmp_path / "b" / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(Unavailable, match="corrupt"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize("name", ["tracts.bin", "bundle.sha256"])
def test_a_bundle_missing_a_file_is_corrupt(tmp_path: Path, name: str) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    (tmp_path / "b" / name).unlink()
    with pytest.raises(Unavailable, match="corrupt"):
        load_bundle(tmp_path / "b")


def test_an_array_without_its_checksum_line_is_corrupt(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    listing = (tmp_path / "b" / "bundle.sha256").read_text().splitlines()
    kept = [line for line in listing if not line.endswith("tracts.bin")]
    (tmp_path / "b" / "bundle.sha256").write_text("\n".join(kept) + "\n")
    with pytest.raises(Unavailable, match="no checksum for tracts.bin"):
        load_bundle(tmp_path / "b")


def test_missing_bundle_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="corrupt"):
        load_bundle(tmp_path / "nowhere")


def test_short_forecast_is_corrupt_even_with_a_good_checksum(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b", bundle_format=1)
    rewrite(tmp_path / "b", lambda raw: raw["tracts"]["T1"]["forecast"].pop())
    with pytest.raises(Unavailable, match="T1 has 13 forecast days, expected 14"):
        load_bundle(tmp_path / "b")


def test_non_finite_number_is_corrupt_even_with_a_good_checksum(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b", bundle_format=1)
    rewrite(tmp_path / "b", lambda raw: raw["tracts"]["T0"]["forecast"][0].__setitem__(1, 1e999))
    with pytest.raises(Unavailable, match="non-finite"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize("bundle_format", FORMATS)
def test_missing_field_is_corrupt(tmp_path: Path, bundle_format: int) -> None:
    write_bundle(make_bundle(), tmp_path / "b", bundle_format=bundle_format)
    header = json.loads((tmp_path / "b" / "bundle.json").read_text())
    header.pop("as_of")
    if bundle_format == 1:
        rewrite(tmp_path / "b", lambda raw: raw.pop("as_of"))
    else:
        replace_file(tmp_path / "b", "bundle.json", json.dumps(header).encode())
    with pytest.raises(Unavailable, match="missing field 'as_of'"):
        load_bundle(tmp_path / "b")


def test_arrays_of_the_wrong_shape_are_corrupt_even_with_a_good_checksum(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    values = load_arrays(tmp_path / "b")["values"]
    replace_array(tmp_path / "b", "values", values[:, :13])
    with pytest.raises(Unavailable, match="corrupt: values is float64.3, 13, 3., not as expected"):
        load_bundle(tmp_path / "b")


def test_an_index_outside_its_array_is_corrupt_even_with_a_good_checksum(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    replace_array(tmp_path / "b", "dates_which", np.array([0, 1, 0]))
    with pytest.raises(Unavailable, match="corrupt: dates_which points outside its 1 entries"):
        load_bundle(tmp_path / "b")


def test_history_ends_past_the_history_are_corrupt(tmp_path: Path) -> None:
    bundle = make_bundle()
    days = bundle.tracts["T1"].forecast
    bundle.tracts["T1"] = TractForecast("T1", "2023-12-31", 10, 1, days, (1, 2))  # type: ignore[index]
    write_bundle(bundle, tmp_path / "b")
    replace_array(tmp_path / "b", "history_ends", np.array([0, 2, 3]))
    with pytest.raises(Unavailable, match="corrupt: history_ends do not split the history"):
        load_bundle(tmp_path / "b")


def test_a_non_finite_array_number_is_corrupt_even_with_a_good_checksum(tmp_path: Path) -> None:
    write_bundle(with_bands(make_bundle()), tmp_path / "b")
    bounds = load_arrays(tmp_path / "b")["bounds"].copy()
    bounds[2, 13, 1, 0] = np.inf
    replace_array(tmp_path / "b", "bounds", bounds)
    with pytest.raises(Unavailable, match="corrupt: a non-finite number"):
        load_bundle(tmp_path / "b")


def test_an_array_of_python_objects_is_refused_without_unpickling_it(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    ran: list[str] = []

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (ran.append, ("unpickled",))

    replace_array(tmp_path / "b", "ids", np.array([Payload()] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(Unavailable, match="corrupt: ids holds object"):
        load_bundle(tmp_path / "b")
    assert ran == []


def test_arrays_that_overlap_are_corrupt(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    header = json.loads((tmp_path / "b" / "bundle.json").read_text())
    header["arrays"]["history_ends"] -= ALIGN
    replace_file(tmp_path / "b", "bundle.json", json.dumps(header).encode())
    with pytest.raises(Unavailable, match="corrupt: history runs past its record"):
        load_bundle(tmp_path / "b")


def test_a_tract_id_twice_is_corrupt(tmp_path: Path) -> None:
    write_bundle(make_bundle(), tmp_path / "b")
    replace_array(tmp_path / "b", "ids", np.array(["T0", "T1", "T0"]))
    with pytest.raises(Unavailable, match="corrupt: a tract id appears twice"):
        load_bundle(tmp_path / "b")


def test_a_loaded_bundle_keeps_answering_after_its_directory_is_removed(tmp_path: Path) -> None:
    """A replica's cache or the store may remove a bundle while a worker still serves it."""
    bundle = with_bands(make_bundle(tracts=50))
    write_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    shutil.rmtree(tmp_path / "b")
    write_bundle(make_bundle(tracts=50, value=9.0), tmp_path / "b")  # another in its place
    assert loaded == bundle


@pytest.mark.parametrize("bundle_format", FORMATS)
def test_a_municipality_sized_bundle_round_trips_intact(tmp_path: Path, bundle_format: int) -> None:
    bundle = make_bundle(tracts=8000)
    write_bundle(bundle, tmp_path / "b", bundle_format=bundle_format)
    loaded = load_bundle(tmp_path / "b")
    assert len(loaded.tracts) == 8000
    assert loaded.tracts == bundle.tracts


def with_bands(bundle: Bundle, high: float = 3.0) -> Bundle:
    """The bundle with 50% and 95% intervals on every forecast day."""
    tracts = {
        tract_id: TractForecast(
            tract.tract_id, tract.as_of, tract.total_cases, tract.new_cases,
            tuple(
                ForecastDay(d.date, d.new_cases, d.lower, d.upper,
                            ((0.5, d.lower + 0.5, d.upper - 0.5), (0.95, 0.0, d.upper + high)))
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
    write_bundle(bundle, tmp_path / "b", bundle_format=1)
    assert load_bundle(tmp_path / "b") == bundle
    raw = json.loads((tmp_path / "b" / "bundle.json").read_text())
    # the old four-column rows are kept; the other intervals sit beside them
    assert len(raw["tracts"]["T1"]["forecast"][0]) == 4
    assert set(raw["tracts"]["T1"]["intervals"]) == {"0.5", "0.95"}


def test_a_bundle_written_before_the_extra_intervals_still_loads(tmp_path: Path) -> None:
    write_bundle(with_bands(make_bundle()), tmp_path / "b", bundle_format=1)
    rewrite(tmp_path / "b", lambda raw: [t.pop("intervals") for t in raw["tracts"].values()])
    loaded = load_bundle(tmp_path / "b")
    assert loaded == make_bundle() and loaded.tracts["T0"].forecast[0].bands == ()


def test_an_interval_with_days_missing_is_corrupt(tmp_path: Path) -> None:
    write_bundle(with_bands(make_bundle()), tmp_path / "b", bundle_format=1)
    rewrite(tmp_path / "b", lambda raw: raw["tracts"]["T0"]["intervals"]["0.5"].pop())
    with pytest.raises(Unavailable, match="days of the 0.5 interval"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize("bundle_format", FORMATS)
def test_tracts_that_differ_in_every_field_load_back_exactly(
    tmp_path: Path, bundle_format: int
) -> None:
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
    write_bundle(bundle, tmp_path / "b", bundle_format=bundle_format)
    loaded = load_bundle(tmp_path / "b")
    assert list(loaded.tracts) == ["T0", "T1", "Z9", "T3"]
    assert {tract_id: loaded.tracts[tract_id] for tract_id in tracts} == tracts
    assert "T2" not in loaded.tracts and loaded.tracts.get("T2") is None
    assert loaded.tracts["Z9"].total_cases == 2**40 and loaded.tracts["Z9"].history[-1] == 199
    assert loaded.tracts["T3"].forecast[0].bands == () and loaded.tracts["T3"].history == ()
