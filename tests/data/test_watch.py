"""The portal watcher against a local server publishing Italy's daily files day by day."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tractcast.data.ingest import ingest_source
from tractcast.data.watch import DataWatcher
from tractcast.registry.store import RegistryReader
from tractcast.settings import Settings
from tractcast.workflows.releases import current_release, ingest_current_release

from .conftest import DAILY_NAME, publish_days

FIRST_DAYS = ["20200224", "20200225", "20200226", "20200227", "20200228", "20200229"]
NEXT_DAY = "20200301"


def watcher_dir(store: Path) -> Path:
    """The data watcher's folder the registry names in a store."""
    return RegistryReader(store).data_dir()


@pytest.fixture
def published(portal, italy_days):
    """The portal's dati-province folder holding the first six days."""
    publish_days(portal.root / "dati-province", italy_days, FIRST_DAYS)
    return portal


def index_watcher(portal, tmp_path: Path) -> DataWatcher:
    return DataWatcher(f"{portal.url}/dati-province/", watcher_dir(tmp_path / "store"), timeout=5)


def test_first_check_downloads_every_daily_file_once(published, tmp_path, italy_index):
    release = index_watcher(published, tmp_path).check()
    assert release is not None
    assert release.files == tuple(DAILY_NAME.format(day=d) for d in FIRST_DAYS)
    assert len(published.downloads()) == len(FIRST_DAYS)
    assert release.path == tmp_path / "store" / "data" / release.data_version
    result = ingest_source(release.path, italy_index)
    assert result.data_version == release.data_version
    assert (result.report["days"], result.report["format"]) == (6, "file_per_day")


def test_unchanged_portal_triggers_nothing_and_downloads_nothing(published, tmp_path):
    watcher = index_watcher(published, tmp_path)
    watcher.check()
    published.log.clear()
    assert watcher.check() is None
    assert published.downloads() == []
    assert len(published.log) <= 1 + 7  # the index page and a few conditional HEADs


def test_a_new_day_is_one_download_and_a_new_data_version(published, tmp_path, italy_days):
    watcher = index_watcher(published, tmp_path)
    first = watcher.check()
    publish_days(published.root / "dati-province", italy_days, [NEXT_DAY])
    published.log.clear()
    second = watcher.check()
    assert second is not None and first is not None
    assert published.downloads() == [f"/dati-province/{DAILY_NAME.format(day=NEXT_DAY)}"]
    assert second.data_version != first.data_version
    assert len(second.files) == 7
    assert first.path.is_dir()  # the older snapshot is kept
    assert watcher.check() is None


def test_a_revised_recent_day_is_downloaded_again(published, tmp_path, italy_days):
    watcher = index_watcher(published, tmp_path)
    first = watcher.check()
    revised = published.root / "dati-province" / DAILY_NAME.format(day=FIRST_DAYS[-1])
    revised.write_bytes(italy_days[FIRST_DAYS[-1]].replace(b",ITA,", b",ITA ,", 1))
    published.log.clear()
    second = watcher.check()
    assert second is not None and first is not None
    assert published.downloads() == [f"/dati-province/{revised.name}"]
    assert second.data_version != first.data_version


def test_the_same_bytes_give_the_same_data_version_in_any_store(published, tmp_path):
    one = index_watcher(published, tmp_path / "a").check()
    two = index_watcher(published, tmp_path / "b").check()
    assert one is not None and two is not None
    assert one.data_version == two.data_version


def test_a_url_template_probes_the_days_after_the_last_known_one(published, tmp_path, italy_days):
    template = f"{published.url}/dati-province/dpc-covid19-ita-province-{{date:%Y%m%d}}.csv"
    watcher = DataWatcher(
        f"{template}#start=2020-02-24", watcher_dir(tmp_path / "store"), timeout=5
    )
    first = watcher.check()
    assert first is not None and len(first.files) == 6
    published.log.clear()
    assert watcher.check() is None
    assert published.downloads() == []
    publish_days(published.root / "dati-province", italy_days, [NEXT_DAY])
    published.log.clear()
    second = watcher.check()
    assert second is not None and len(second.files) == 7
    assert published.downloads() == [f"/dati-province/{DAILY_NAME.format(day=NEXT_DAY)}"]


def test_a_single_csv_url_is_revalidated_with_a_conditional_request(portal, tmp_path):
    (portal.root / "cases.csv").write_text("date,code,cases\n2021-03-01,001,3\n")
    watcher = DataWatcher(f"{portal.url}/cases.csv", watcher_dir(tmp_path / "store"), timeout=5)
    release = watcher.check()
    assert release is not None and release.path.name == "cases.csv"
    portal.log.clear()
    assert watcher.check() is None
    assert [status for _, _, status in portal.log] == [304]


def test_a_refused_release_leaves_the_last_good_one_in_use(
    published, tmp_path, italy_index, italy_provinces
):
    settings = Settings(
        data_source=f"{published.url}/dati-province/",
        tracts=str(italy_provinces),
        store=tmp_path / "store",
    )
    good, result = ingest_current_release(settings, italy_index)
    error_page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>\n"
    (published.root / "dati-province" / DAILY_NAME.format(day=NEXT_DAY)).write_bytes(error_page)
    used, fallback = ingest_current_release(settings, italy_index)
    assert used == good
    assert fallback.data_version == result.data_version
    refused = fallback.report["refused_release"]
    assert "HTML" in refused["reason"] and NEXT_DAY in refused["reason"]
    watcher = DataWatcher(settings.data_source or "", watcher_dir(settings.store))
    assert refused["data_version"] in watcher.rejections()
    assert watcher.latest_good() == good
    published.log.clear()
    assert current_release(settings) == good  # no new download: the refusal is remembered
    assert published.downloads() == []


def test_a_local_file_is_rehashed_only_when_size_or_mtime_moves(tmp_path):
    source = tmp_path / "cases.csv"
    source.write_text("date,code,cases\n2021-03-01,001,3\n")
    watcher = DataWatcher(str(source), watcher_dir(tmp_path / "store"))
    first = watcher.check()
    assert first is not None and first.path.read_bytes() == source.read_bytes()
    os.utime(source, (1_700_000_000, 1_700_000_000))  # touched, same bytes
    assert watcher.check() is None
    source.write_text("date,code,cases\n2021-03-01,001,3\n2021-03-02,001,5\n")
    second = watcher.check()
    assert second is not None and second.data_version != first.data_version


def test_a_directory_source_snapshots_only_changed_files(tmp_path, italy_days):
    folder = tmp_path / "portal"
    publish_days(folder, italy_days, FIRST_DAYS)
    watcher = DataWatcher(str(folder), watcher_dir(tmp_path / "store"))
    first = watcher.check()
    publish_days(folder, italy_days, [NEXT_DAY])
    second = watcher.check()
    assert first is not None and second is not None
    old = first.path / DAILY_NAME.format(day=FIRST_DAYS[0])
    new = second.path / DAILY_NAME.format(day=FIRST_DAYS[0])
    assert old.stat().st_ino == new.stat().st_ino  # linked, not copied again
    assert watcher.check() is None


def test_an_s3_prefix_is_watched_through_its_etags(tmp_path, italy_days):
    import boto3  # the train extra, installed by make install
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="portal")
        for day in FIRST_DAYS[:3]:
            name = f"dati-province/{DAILY_NAME.format(day=day)}"
            client.put_object(Bucket="portal", Key=name, Body=italy_days[day])
        watcher = DataWatcher(
            "s3://portal/dati-province/", watcher_dir(tmp_path / "store"), client=client
        )
        first = watcher.check()
        assert first is not None and len(first.files) == 3
        assert watcher.check() is None
        day = FIRST_DAYS[3]
        key = f"dati-province/{DAILY_NAME.format(day=day)}"
        client.put_object(Bucket="portal", Key=key, Body=italy_days[day])
        second = watcher.check()
        assert second is not None and len(second.files) == 4
        assert second.data_version != first.data_version


def test_ingest_reads_a_url_directly(published, italy_index):
    result = ingest_source(f"{published.url}/dati-province/", italy_index)
    assert result.report["files"] == 6
    assert result.report["tracts_matched"] == 107


def test_with_nothing_configured_the_demo_data_is_the_source(tmp_path):
    settings = Settings(store=tmp_path / "store", demo_dir=tmp_path / "demo")
    release = current_release(settings)
    assert release.path.name == "cases.csv"
    assert release.path.parent.parent == tmp_path / "store" / "data"
    assert current_release(settings) == release
