"""The `tractcast` command line: every command has --help, --json is machine-readable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tractcast.cli import build_parser, main
from tractcast.settings import Settings

COMMANDS = (
    "ingest", "accept-data", "train", "backtest", "forecast", "versions", "promote", "rollback",
    "serve",
)  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: tractcast {command}" in out
    if command != "serve":
        assert "--json" in out


def test_parser_knows_every_command():
    subparsers = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert set(subparsers.choices) == set(COMMANDS)


def test_ingest_json_summarises_the_italy_file(italy_cases, italy_provinces, tmp_path, capsys):
    code = main(
        [
            "ingest",
            str(italy_cases),
            "--tracts",
            str(italy_provinces),
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "long"
    assert summary["value_kind"] == "cumulative"
    assert summary["tracts_matched"] == 107 and summary["tracts_unmatched"] == 0
    assert (summary["start"], summary["end"], summary["days"]) == ("2020-02-24", "2025-01-08", 1781)
    assert summary["rows_read"] == 262_807
    assert (tmp_path / "series.parquet").exists() and (tmp_path / "report.json").exists()
    assert summary["value_column"] == "totale_casi"
    assert summary["date_source"]["column"] == "data"
    assert summary["stale"]["stale"] is False


def test_accept_data_of_a_release_that_is_not_held_is_a_clear_error(tmp_path, capsys):
    settings = Settings(
        data_source=str(tmp_path / "cases.csv"),
        tracts=str(tmp_path / "tracts.geojson"),
        store=tmp_path / "store",
    )
    assert main(["accept-data", "0123456789abcdef", "--json"], settings=settings) == 2
    error = json.loads(capsys.readouterr().err)
    assert error["error"] == "not_found" and "0123456789abcdef" in error["message"]


def test_versions_on_an_empty_store_lists_nothing(tmp_path, capsys):
    assert main(["versions", "--json"], settings=Settings(store=tmp_path / "store")) == 0
    assert json.loads(capsys.readouterr().out) == {"current": None, "versions": []}


def test_rollback_without_history_is_a_clear_error(tmp_path, capsys):
    code = main(["rollback", "--json"], settings=Settings(store=tmp_path / "store"))
    assert code == 2
    error = json.loads(capsys.readouterr().err)
    assert error["error"] == "conflict"


def test_promote_of_a_malformed_version_is_refused(tmp_path, capsys):
    code = main(["promote", "../etc", "--json"], settings=Settings(store=tmp_path / "store"))
    assert code == 2
    assert json.loads(capsys.readouterr().err)["error"] == "invalid_input"


def test_forecast_outside_every_tract_is_not_found(tmp_path, italy_provinces, capsys):
    settings = Settings(store=tmp_path / "store", data_source="x.csv", tracts=str(italy_provinces))
    code = main(["forecast", "--lat", "40.0", "--lon", "12.0"], settings=settings)
    assert code == 2
    assert "no tract contains" in capsys.readouterr().err


def test_ingest_of_a_broken_file_is_refused(tmp_path, italy_provinces, capsys):
    broken = Path(tmp_path / "page.csv")
    broken.write_text("<html><body>502 Bad Gateway</body></html>\n")
    code = main(["ingest", str(broken), "--tracts", str(italy_provinces), "--out", str(tmp_path)])
    assert code == 2
    assert "error:" in capsys.readouterr().err
