"""Release to release: refused and held releases leave the last good one in use.

The first accepted release pins its schema and national history; a later release refused by
ingestion (ambiguous, implausible) or held by the guard (inferred differently, history
rewritten) never becomes the data in use, and is reported, recorded as an event, and (held)
accepted only by an admin.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from tests.data import corpus
from tests.data.corpus import CorpusLayer

from services.registry.app import create_app
from tractcast.data.watch import DataWatcher
from tractcast.errors import NotFound
from tractcast.registry.registry import Registry
from tractcast.registry.store import RegistryReader
from tractcast.settings import Settings
from tractcast.workflows.releases import ingest_current_release

TOKEN = "guard-token"


def portal_watcher(portal, settings: Settings) -> DataWatcher:
    """The watcher of the test portal, in the folder the registry names in the store."""
    return DataWatcher(str(portal), RegistryReader(settings.store).data_dir())


@pytest.fixture
def portal(tmp_path: Path) -> Path:
    """The folder the publisher writes releases into, holding a good first release."""
    folder = tmp_path / "portal"
    corpus.measures_side_by_side(folder)
    return folder


@pytest.fixture
def settings(tmp_path: Path, portal: Path) -> Settings:
    return Settings(
        data_source=str(portal),
        tracts=str(tmp_path / "layer-not-read.geojson"),
        store=tmp_path / "store",
        admin_token=TOKEN,
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
    )


def publish(portal: Path, writer: Callable[[Path], Path]) -> None:
    """Replace the portal's files with another release."""
    shutil.rmtree(portal)
    writer(portal)


def edit_cases(portal: Path, change: Callable[[list[str]], list[str]]) -> None:
    """Rewrite the good release's rows (date, code, tests, cases, deaths, hospital)."""
    path = portal / "indicators.csv"
    header, *rows = path.read_text().splitlines()
    path.write_text("\n".join([header, *change(rows)]) + "\n")


def scale_cases(rows: list[str], factor: int) -> list[str]:
    out = []
    for row in rows:
        parts = row.split(",")
        parts[3] = str(int(parts[3]) * factor)
        out.append(",".join(parts))
    return out


def jump_one_day(rows: list[str]) -> list[str]:
    out = []
    for row in rows:
        parts = row.split(",")
        if parts[0] == "2021-03-30" and parts[1] == "06037":
            parts[3] = str(int(parts[3]) * 1000)
        out.append(",".join(parts))
    return out


REFUSED = {
    "ambiguous_counts": lambda portal: publish(portal, corpus.two_unrelated_counts),
    "implausible_jump": lambda portal: edit_cases(portal, jump_one_day),
    "rate_without_population_or_name": lambda portal: publish(
        portal, lambda f: corpus.per_area_with_rates(f, opaque=True)
    ),
}
HELD = {
    "schema_changed": lambda portal: publish(portal, corpus.neutral_cumulative_and_daily),
    "history_rewritten": lambda portal: edit_cases(portal, lambda rows: scale_cases(rows, 2)),
}


@pytest.mark.parametrize("change", list(REFUSED), ids=list(REFUSED))
def test_a_refused_release_leaves_the_last_good_one_serving(settings, portal, change):
    layer = CorpusLayer(with_population=change != "rate_without_population_or_name")
    good, first = ingest_current_release(settings, layer)
    REFUSED[change](portal)
    used, fallback = ingest_current_release(settings, layer)
    assert used == good and fallback.data_version == first.data_version
    refused = fallback.report["refused_release"]
    assert refused["data_version"] != good.data_version
    assert "TRACTCAST_VALUE_COLUMN" in refused["reason"]
    watcher = portal_watcher(portal, settings)
    assert refused["data_version"] in watcher.rejections()
    assert ingest_current_release(settings, layer)[0] == good  # remembered, not retried


@pytest.mark.parametrize("change", list(HELD), ids=list(HELD))
def test_a_held_release_waits_for_an_admin_while_the_last_good_one_serves(settings, portal, change):
    layer = CorpusLayer()
    good, first = ingest_current_release(settings, layer)
    HELD[change](portal)
    used, fallback = ingest_current_release(settings, layer)
    assert used == good and fallback.data_version == first.data_version
    held = fallback.report["held_release"]
    watcher = portal_watcher(portal, settings)
    assert set(watcher.held()) == {held["data_version"]}
    assert watcher.pinned()["data_version"] == good.data_version
    registry = Registry.open(settings)
    try:
        (event,) = registry.record_data_events(watcher)
        assert (event.kind, event.version, event.from_version) == (
            "data_held",
            held["data_version"],
            good.data_version,
        )
        assert registry.record_data_events(watcher) == []  # recorded once
        assert ingest_current_release(settings, layer)[0] == good  # still held
        accepted = registry.accept_data_release(watcher, held["data_version"])
        assert accepted.kind == "data_accepted"
    finally:
        registry.close()
    used, result = ingest_current_release(settings, layer)
    assert used.data_version == held["data_version"] == result.data_version
    assert watcher.pinned()["data_version"] == held["data_version"]


def test_the_schema_change_names_what_changed(settings, portal):
    ingest_current_release(settings, CorpusLayer())
    publish(portal, corpus.neutral_cumulative_and_daily)
    _, fallback = ingest_current_release(settings, CorpusLayer())
    reason = fallback.report["held_release"]["reason"]
    assert "value_column: 'cases' -> 'v_b'" in reason
    assert "value_kind: 'daily' -> 'cumulative'" in reason
    assert "accept-data" in reason


def test_a_history_rewrite_names_the_share_and_the_setting(settings, portal):
    ingest_current_release(settings, CorpusLayer())
    edit_cases(portal, lambda rows: scale_cases(rows, 2))
    _, fallback = ingest_current_release(settings, CorpusLayer())
    assert (
        "rewrites 100.0% of the national daily cases" in fallback.report["held_release"]["reason"]
    )
    assert "TRACTCAST_HISTORY_TOLERANCE=0.1" in fallback.report["held_release"]["reason"]


def test_a_new_day_with_revision_noise_is_accepted_and_moves_the_pin(settings, portal):
    good, _ = ingest_current_release(settings, CorpusLayer())

    def revise(rows: list[str]) -> list[str]:
        first = rows[0].split(",")
        first[3] = str(int(first[3]) + 1)  # one case added to an old day
        return [",".join(first), *rows[1:]]

    edit_cases(portal, revise)
    used, result = ingest_current_release(settings, CorpusLayer())
    assert used.data_version != good.data_version
    assert "held_release" not in result.report and "refused_release" not in result.report
    assert portal_watcher(portal, settings).pinned()["data_version"] == used.data_version


def test_accepting_a_release_that_is_not_held_is_not_found(settings, portal):
    ingest_current_release(settings, CorpusLayer())
    registry = Registry.open(settings)
    try:
        with pytest.raises(NotFound):
            registry.accept_data_release(
                portal_watcher(portal, settings),
                "0123abcd",
            )
    finally:
        registry.close()


def test_the_admin_endpoint_accepts_a_held_release_behind_the_token(settings, portal):
    ingest_current_release(settings, CorpusLayer())
    publish(portal, corpus.neutral_cumulative_and_daily)
    held = ingest_current_release(settings, CorpusLayer())[1].report["held_release"]
    app = create_app(settings)
    try:
        client: FlaskClient = app.test_client()
        body = {"data_version": held["data_version"]}
        assert client.post("/v1/admin/data/accept", json=body).status_code == 401
        answer = client.post(
            "/v1/admin/data/accept", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["event"]["kind"] == "data_accepted"
        kinds = [e["kind"] for e in client.get("/v1/events").get_json()["events"]]
        assert "data_accepted" in kinds
        missing = client.post(
            "/v1/admin/data/accept",
            json={"data_version": "ffff0000ffff0000"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    finally:
        app.extensions["tractcast.registry"].close()
    used, _ = ingest_current_release(settings, CorpusLayer())
    assert used.data_version == held["data_version"]
