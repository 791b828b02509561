"""Ingest of small hand-made files: encodings, delimiters, keys, kinds, quarantine, rejection."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tractcast.data.ingest import ingest_source
from tractcast.errors import DataRejected, InvalidInput
from tractcast.geo.index import Tract


@dataclass
class StandInLayer:
    """A tract layer without geometry: what ingestion needs from TractIndex."""

    rows: list[dict[str, Any]]
    id_field: str = "code"
    name_field: str = "name"
    tracts: list[Tract] = field(init=False)

    def __post_init__(self) -> None:
        self.tracts = [Tract(str(r[self.id_field]), str(r[self.name_field])) for r in self.rows]

    def properties(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]


@pytest.fixture
def layer() -> StandInLayer:
    return StandInLayer(
        [
            {"code": "001", "name": "Torino", "sigla": "TO"},
            {"code": "015", "name": "Milano", "sigla": "MI"},
            {"code": "058", "name": "Roma", "sigla": "RM"},
        ]
    )


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "cases.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


CUMULATIVE = """\
giorno;provincia;nome;casi
2021-03-01;1;Torino;10
2021-03-01;15;Milano;20
2021-03-01;58;Roma;5
2021-03-01;999;In fase di definizione;7
2021-03-02;1;Torino;12
2021-03-02;15;Milano;26
2021-03-02;58;Roma;9
2021-03-02;999;In fase di definizione;8
2021-03-03;1;Torino;15
2021-03-03;15;Milano;30
2021-03-03;58;Roma;11
2021-03-03;999;In fase di definizione;6
"""


def test_semicolon_latin1_file_with_lost_leading_zeros_joins_the_layer(tmp_path, layer):
    path = write(tmp_path, CUMULATIVE.replace("nome", "località"), encoding="latin-1")
    result = ingest_source(path, layer)
    report = result.report
    assert (report["delimiter"], report["encoding"]) == (";", "latin-1")
    assert (report["tract_column"], report["layer_property"]) == ("provincia", "code")
    assert report["value_kind"] == "cumulative"
    assert sorted(result.series["tract_id"].unique()) == ["001", "015", "058"]
    milano = result.series[result.series["tract_id"] == "015"]
    assert milano["new_cases"].tolist() == [20, 6, 4]
    assert milano["total_cases"].tolist() == [20, 26, 30]


def test_utf8_bom_file_reads_its_first_column_name_cleanly(tmp_path, layer):
    path = write(tmp_path, "\ufeff" + CUMULATIVE.replace(";", ","), encoding="utf-8")
    result = ingest_source(path, layer)
    assert result.report["date_column"] == "giorno"
    assert result.report["encoding"] == "utf-8-sig"


def test_tab_separated_gzip_file_is_ingested(tmp_path, layer):
    import gzip

    path = tmp_path / "cases.tsv.gz"
    path.write_bytes(gzip.compress(CUMULATIVE.replace(";", "\t").encode()))
    result = ingest_source(path, layer)
    assert result.report["delimiter"] == "\t"
    assert result.report["tracts_matched"] == 3


def test_unmatched_key_is_reported_with_its_last_cumulative_value(tmp_path, layer):
    result = ingest_source(write(tmp_path, CUMULATIVE), layer)
    assert result.report["unmatched_keys"] == {
        "999": {"rows": 3, "total": 6.0, "first": "2021-03-01", "last": "2021-03-03"}
    }
    assert "999" not in set(result.series["tract_id"])


def test_daily_column_is_recognised_and_accumulated(tmp_path, layer):
    text = "when,sigla,new\n" + "".join(
        f"2022-01-{day:02d},{code},{value}\n"
        for day, values in enumerate([(3, 0, 7), (1, 5, 2), (4, 2, 0), (0, 6, 3)], start=1)
        for code, value in zip(("TO", "MI", "RM"), values, strict=True)
    )
    result = ingest_source(write(tmp_path, text), layer)
    assert result.report["value_kind"] == "daily"
    assert result.report["layer_property"] == "sigla"
    torino = result.series[result.series["tract_id"] == "001"]
    assert torino["new_cases"].tolist() == [3, 1, 4, 0]
    assert torino["total_cases"].tolist() == [3, 4, 8, 8]


def test_a_missing_day_is_filled_and_marked_imputed(tmp_path, layer):
    lines = CUMULATIVE.splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("2021-03-02;15;"))
    result = ingest_source(write(tmp_path, text), layer)
    milano = result.series[result.series["tract_id"] == "015"]
    assert milano["imputed"].tolist() == [False, True, False]
    assert milano["total_cases"].tolist() == [20, 25, 30]
    assert result.report["days_imputed"] == 1


def test_bad_rows_are_quarantined_with_line_and_reason(tmp_path, layer):
    text = CUMULATIVE + (
        "2021-13-45;1;Torino;16\n"  # line 14
        "2021-03-04;15;Milano;-3\n"  # line 15
        "2021-03-04;58;Roma;molti\n"  # line 16
        "2021-03-04;1;Torino;17;extra\n"  # line 17
        "2021-03-04;1;Torino;18\n"  # line 18
    )
    result = ingest_source(write(tmp_path, text), layer)
    report = result.report
    assert [(q["line"], q["reason"]) for q in report["quarantine"]] == [
        (14, "unparseable_date"),
        (15, "negative_value"),
        (16, "non_numeric_value"),
        (17, "malformed_line"),
    ]
    assert report["quarantine_reasons"] == {
        "malformed_line": 1,
        "negative_value": 1,
        "non_numeric_value": 1,
        "unparseable_date": 1,
    }
    assert report["rows_quarantined"] == 4
    assert report["rows_read"] == 17
    torino = result.series[result.series["tract_id"] == "001"]
    assert torino["total_cases"].iloc[-1] == 18


def test_conflicting_duplicates_are_quarantined_and_identical_ones_collapsed(tmp_path, layer):
    text = CUMULATIVE + "2021-03-03;15;Milano;31\n2021-03-03;58;Roma;11\n"
    result = ingest_source(write(tmp_path, text), layer)
    reasons = [(q["line"], q["reason"]) for q in result.report["quarantine"]]
    assert reasons == [(11, "conflicting_duplicate"), (14, "conflicting_duplicate")]
    assert result.report["duplicates_collapsed"] == 1
    milano = result.series[result.series["tract_id"] == "015"]
    assert milano["imputed"].tolist() == [False, False, True]


def test_time_of_day_is_stripped_from_dates(tmp_path, layer):
    text = CUMULATIVE.replace("2021-03-01;", "2021-03-01T18:00:00;").replace(
        "2021-03-02;", "2021-03-02 17:00:00;"
    )
    result = ingest_source(write(tmp_path, text), layer)
    assert result.report["days"] == 3
    assert (result.series["date"] == result.series["date"].dt.normalize()).all()


def test_overrides_skip_inference(tmp_path, layer):
    result = ingest_source(
        write(tmp_path, CUMULATIVE),
        layer,
        date_column="giorno",
        tract_column="provincia",
        value_column="casi",
        value_kind="daily",
    )
    assert result.report["value_kind"] == "daily"
    assert result.report["evidence"]["value"]["override"] is True


def test_override_naming_a_missing_column_is_invalid_input(tmp_path, layer):
    with pytest.raises(InvalidInput, match="nope"):
        ingest_source(write(tmp_path, CUMULATIVE), layer, value_column="nope")


def test_html_error_page_is_rejected(tmp_path, layer):
    page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head></html>\n"
    with pytest.raises(DataRejected, match="HTML"):
        ingest_source(write(tmp_path, page), layer)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_is_rejected(tmp_path, layer, text):
    with pytest.raises(DataRejected, match="empty"):
        ingest_source(write(tmp_path, text), layer)


def test_file_without_a_date_column_is_rejected(tmp_path, layer):
    text = "provincia;casi;altro\n1;10;a\n15;20;b\n58;5;c\n"
    with pytest.raises(DataRejected, match="no date column"):
        ingest_source(write(tmp_path, text), layer)


def test_file_whose_keys_match_no_tract_is_rejected(tmp_path, layer):
    text = "date,region,cases\n2021-03-01,north,10\n2021-03-01,south,4\n2021-03-02,north,12\n"
    with pytest.raises(DataRejected, match="no column matches the tracts"):
        ingest_source(write(tmp_path, text), layer)


def test_file_without_a_count_column_is_rejected(tmp_path, layer):
    text = "date,code,status\n2021-03-01,001,ok\n2021-03-01,015,ok\n2021-03-02,001,late\n"
    with pytest.raises(DataRejected, match="no value column"):
        ingest_source(write(tmp_path, text), layer)


def test_missing_source_file_is_invalid_input(tmp_path, layer):
    with pytest.raises(InvalidInput, match="not a readable file"):
        ingest_source(tmp_path / "absent.csv", layer)


def test_data_version_is_the_hash_of_the_raw_bytes(tmp_path, layer):
    first = ingest_source(write(tmp_path, CUMULATIVE, name="a.csv"), layer)
    same = ingest_source(write(tmp_path, CUMULATIVE, name="b.csv"), layer)
    other = ingest_source(write(tmp_path, CUMULATIVE + "\n", name="c.csv"), layer)
    assert first.data_version == same.data_version != other.data_version


def test_blank_lines_are_quarantined_without_disturbing_inference(tmp_path, layer):
    text = "date,code,cases\n2021-01-01,001,3\n\n2021-01-02,001,4\n"
    result = ingest_source(write(tmp_path, text), layer)
    assert result.report["quarantine"] == [
        {"file": "cases.csv", "line": 3, "reason": "blank_line", "detail": ""}
    ]
    assert result.report["rows_read"] == 3
    assert result.series["total_cases"].tolist() == [3, 4]


def test_header_only_file_is_rejected(tmp_path, layer):
    with pytest.raises(DataRejected, match="at least three columns and one row"):
        ingest_source(write(tmp_path, "date,code,cases\n"), layer)


COUNTIES = """\
date,county,state,fips,cases,deaths
2021-03-01,Turin,Piemonte,1,10,1
2021-03-01,Milan,Lombardia,15,20,2
2021-03-01,Unknown,Lombardia,,4,0
2021-03-01,Unknown,Piemonte,,2,0
2021-03-02,Turin,Piemonte,1,13,1
2021-03-02,Milan,Lombardia,15,26,3
2021-03-02,Unknown,Lombardia,,5,0
2021-03-02,Unknown,Piemonte,,3,0
2021-03-03,Turin,Piemonte,1,15,2
2021-03-03,Milan,Lombardia,15,31,3
2021-03-03,Unknown,Lombardia,,9,1
2021-03-03,Unknown,Piemonte,,3,0
2021-03-03,Rome,Lazio,58,7,0
"""


def test_rows_without_a_key_are_pseudo_areas_named_by_their_labels(tmp_path, layer):
    result = ingest_source(write(tmp_path, COUNTIES), layer)
    report = result.report
    assert report["value_column"] == "cases"
    assert report["rows_quarantined"] == 0
    assert {k: v["total"] for k, v in report["unmatched_keys"].items()} == {
        "Unknown, Lombardia": 9.0,
        "Unknown, Piemonte": 3.0,
    }
    assert report["unmatched_total"] == 12.0


def test_rows_that_split_an_area_day_into_parts_are_summed(tmp_path, layer):
    lines = ["day,code,age,new"]
    for day, (young, old) in enumerate([(3, 1), (4, 2), (0, 5)], start=1):
        lines += [f"2021-03-0{day},001,0-59,{young}", f"2021-03-0{day},001,60+,{old}"]
        lines += [f"2021-03-0{day},015,0-59,{day}", f"2021-03-0{day},015,60+,{day + 1}"]
    result = ingest_source(write(tmp_path, "\n".join(lines) + "\n"), layer)
    assert result.report["rows_summed"] == 6
    assert result.report["value_kind"] == "daily"
    torino = result.series[result.series["tract_id"] == "001"]
    assert torino["new_cases"].tolist() == [4, 6, 5]


def test_a_negative_daily_count_is_a_correction_kept_and_repaired(tmp_path, layer):
    text = "when,sigla,new\n" + "".join(
        f"2022-01-{day:02d},{code},{value}\n"
        for day, values in enumerate([(5, 3), (6, 4), (-4, 5), (7, 3), (6, 4)], start=1)
        for code, value in zip(("TO", "MI"), values, strict=True)
    )
    result = ingest_source(write(tmp_path, text), layer)
    assert result.report["value_kind"] == "daily"
    assert result.report["rows_quarantined"] == 0
    torino = result.series[result.series["tract_id"] == "001"]
    assert (torino["new_cases"] >= 0).all()
    assert torino["total_cases"].iloc[-1] == 5 + 6 - 4 + 7 + 6
    assert result.report["cleaning"]["negative_days_before"] == 1


def test_parts_next_to_their_total_row_are_not_counted_twice(tmp_path, layer):
    lines = ["dep;jour;P;cl_age90"]
    for day, parts in enumerate([(3, 1), (4, 2), (0, 5)], start=1):
        for code in ("01", "15"):
            lines.append(f"{code};2021-03-0{day};{sum(parts)};0")
            lines += [
                f"{code};2021-03-0{day};{n};{age}" for n, age in zip(parts, (9, 19), strict=True)
            ]
    result = ingest_source(write(tmp_path, "\n".join(lines) + "\n"), layer)
    torino = result.series[result.series["tract_id"] == "001"]
    assert torino["new_cases"].tolist() == [4, 6, 5]
