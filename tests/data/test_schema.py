"""Column inference by content."""

from __future__ import annotations

import pandas as pd
import pytest

from tractcast.data.schema.counts import infer_value_column
from tractcast.data.schema.dates import infer_date_column
from tractcast.data.schema.inference import detect_layout
from tractcast.data.schema.keys import layer_key_maps
from tractcast.data.schema.parsing import (
    map_distinct,
    normalise_key,
    normalise_keys,
    parse_dates,
    strip_text,
)
from tractcast.errors import DataRejected
from tractcast.geo.index import Tract


class TinyLayer:
    id_field = "code"

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.tracts = [Tract(str(r["code"]), str(r.get("name", ""))) for r in rows]

    def properties(self) -> list[dict]:
        return [dict(r) for r in self.rows]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("015", "15"), (" 15 ", "15"), (15, "15"), (15.0, "15"), ("000", "0"), (" MI ", "mi"),
     (None, ""), (float("nan"), ""), ("T01", "t01")],
)  # fmt: skip
def test_normalise_key_strips_casefolds_and_drops_leading_zeros(raw, expected):
    assert normalise_key(raw) == expected


def test_stripping_and_looking_up_once_per_distinct_value_gives_every_cell_its_own_answer():
    column = pd.Series([" TO ", None, float("nan"), "MI", " TO ", 3, ""], dtype=object)
    stripped = strip_text(column)
    assert stripped.equals(column.str.strip())  # None and NaN stay apart, a number is no text
    assert stripped.tolist()[:4:3] == ["TO", "MI"] and stripped.iat[1] is None
    keys = pd.Series(["to", "mi", "xx", "to"], dtype=object)
    mapped = map_distinct(keys, {"to": "001", "mi": "015"})
    assert mapped.equals(keys.map({"to": "001", "mi": "015"}))
    assert mapped.tolist()[:2] == ["001", "015"] and pd.isna(mapped.iat[2])


def test_normalise_keys_maps_a_column_value_by_value():
    assert normalise_keys(pd.Series(["001", "1", " TO"])).tolist() == ["1", "1", "to"]


def test_parse_dates_strips_time_and_rejects_implausible_years():
    parsed = parse_dates(pd.Series(["2020-02-24T18:00:00", "2020-02-25 17:00", "0001-01-01", "x"]),
                         "%Y-%m-%d")  # fmt: skip
    assert parsed.iloc[0] == pd.Timestamp("2020-02-24")
    assert parsed.iloc[1] == pd.Timestamp("2020-02-25")
    assert parsed.iloc[2:].isna().all()


def test_date_column_is_found_by_content_in_day_first_format():
    frame = pd.DataFrame({"a": ["x", "y", "z"], "b": ["24/02/2020", "25/02/2020", "13/03/2020"]})
    inference = infer_date_column(frame)
    assert (inference.column, inference.date_format) == ("b", "%d/%m/%Y")
    assert inference.evidence["share_parsed"] == 1.0


def test_frame_without_dates_is_rejected():
    with pytest.raises(DataRejected, match="no date column"):
        infer_date_column(pd.DataFrame({"a": ["1", "2"], "b": ["x", "y"]}))


def test_wide_layout_is_detected_from_date_headers():
    frame = pd.DataFrame(columns=["code", "2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"])
    assert detect_layout(frame) == "wide"
    assert detect_layout(pd.DataFrame(columns=["date", "code", "cases"])) == "long"


def test_layer_key_maps_keep_only_properties_that_identify_tracts():
    layer = TinyLayer(
        [{"code": "001", "name": "A", "region": "N"}, {"code": "002", "name": "B", "region": "N"}]
    )
    maps = layer_key_maps(layer)
    assert maps["code"] == {"1": "001", "2": "002"}
    assert "name" in maps and "region" not in maps


def test_value_kind_is_cumulative_when_values_rise_per_tract():
    dates = pd.Series(pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03"] * 2))
    keys = pd.Series(["1"] * 3 + ["2"] * 3)
    frame = pd.DataFrame(
        {"total": ["1", "4", "9", "0", "2", "2"], "new": ["1", "3", "5", "0", "2", "0"]}
    )
    inference = infer_value_column(frame, dates, keys)
    assert (inference.column, inference.kind) == ("total", "cumulative")
    daily = infer_value_column(frame[["new"]], dates, keys)
    assert daily.kind == "daily"
    assert daily.evidence["share_rising_of_changes"] < 0.9


def test_attribute_columns_constant_per_tract_are_not_values():
    dates = pd.Series(pd.to_datetime(["2021-01-01", "2021-01-02"] * 2))
    keys = pd.Series(["1", "1", "2", "2"])
    frame = pd.DataFrame({"region": ["3", "3", "4", "4"], "cases": ["1", "2", "5", "7"]})
    inference = infer_value_column(frame, dates, keys)
    assert inference.column == "cases"
    assert "region" in inference.evidence["rejected"]
