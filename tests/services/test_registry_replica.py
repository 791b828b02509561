"""The registry service on a host without the store (TRACTCAST_SERVING_SOURCE=s3): versions,
metrics and events from the metadata database, bundles from moto's S3 server; what would write
the store is refused, naming where to run it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from tests.faults.processes import free_port
from tests.services.test_registry_app import ADMIN, TOKEN, tiny_bundle

from services.registry.app import create_app
from tractcast.registry.registry import Registry
from tractcast.settings import Settings


@pytest.fixture
def writer(tmp_path: Path, s3_endpoint: str, aws_credentials: None) -> Iterator[Registry]:
    """The registry of the host with the store: two versions, the second promoted, mirrored."""
    bucket = f"tractcast-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    settings = Settings(
        store=tmp_path / "writer-store",
        demo_dir=tmp_path / "writer-demo",
        database_url=f"sqlite:///{tmp_path / 'shared.db'}",
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
    )
    registry = Registry.open(settings)
    for family, mae in (("lstm", 2.5), ("ensemble", 1.5)):
        version = registry.register(
            family,
            lambda directory: (directory / "model.h5").write_bytes(b"weights"),
            metrics={"mae": mae},
            manifest={"data_version": "d1", "ingest": {"rows_quarantined": 3}},
        )
        registry.add_bundle(tiny_bundle(version.version))
        registry.promote(version.version, reason="test")
    assert registry.mirror() is not None
    yield registry
    registry.close()


@pytest.fixture
def replica(writer: Registry, tmp_path: Path) -> Iterator[Flask]:
    settings = writer.settings.with_(
        store=tmp_path / "replica-store-never-written",
        serving_source="s3",
        serving_cache=tmp_path / "replica-cache",
        admin_token=TOKEN,
    )
    app = create_app(settings)
    yield app
    app.extensions["tractcast.registry"].close()


@pytest.fixture
def client(replica: Flask) -> FlaskClient:
    return replica.test_client()


def test_a_registry_without_the_store_answers_every_model_question(
    client: FlaskClient, writer: Registry, replica: Flask
) -> None:
    first, second = [version.version for version in writer.list_versions()]
    listed = client.get("/v1/models")
    assert listed.status_code == 200
    assert listed.json["current"] == second
    assert [(v["version"], v["metrics"], v["serving"]) for v in listed.json["versions"]] == [
        (first, {"mae": 2.5}, False),
        (second, {"mae": 1.5}, True),
    ]
    current = client.get("/v1/models/current")
    assert current.status_code == 200
    assert current.json["bundle_id"] == f"{second}@d1" and current.json["as_of"] == "2024-03-01"
    assert (
        current.json["metrics"] == {"mae": 1.5} and current.json["live_skill"]["version"] == second
    )
    described = client.get(f"/v1/models/{first}")
    assert described.status_code == 200 and described.json["latest_bundle"] == f"{first}@d1"
    assert described.json["manifest"]["ingest"] == {"rows_quarantined": 3}
    events = client.get("/v1/events").json["events"]
    assert [(e["kind"], e["version"]) for e in events] == [
        ("promoted", second),
        ("registered", second),
        ("promoted", first),
        ("registered", first),
    ]
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["current"] == f"{second}@d1"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'tractcast_quarantined_rows{{data_version="d1",version="{second}"}} 3' in metrics
    assert client.get("/v1/models/v0099-lstm").status_code == 404
    assert client.get("/v1/models/nope").status_code == 400
    store = Path(replica.config["TRACTCAST_SETTINGS"].store)
    assert not store.exists()  # nothing of the store on this host


def test_a_promotion_on_the_store_host_is_followed(client: FlaskClient, writer: Registry) -> None:
    first, second = [version.version for version in writer.list_versions()]
    assert client.get("/v1/models/current").json["version"] == second
    writer.rollback(reason="test")
    assert client.get("/v1/models/current").json["version"] == first
    assert client.get("/v1/events").json["events"][0]["kind"] == "rolled_back"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/admin/promote", {"version": "v0001-lstm"}),
        ("/v1/admin/rollback", {}),
        ("/v1/admin/data/accept", {"data_version": "d1"}),
    ],
)
def test_admin_writes_without_the_store_are_refused_naming_where_to_run_them(
    client: FlaskClient, writer: Registry, replica: Flask, path: str, body: dict[str, str]
) -> None:
    answer = client.post(path, json=body, headers=ADMIN)
    assert answer.status_code == 409 and answer.json["error"] == "conflict"
    assert "run it where the store is" in answer.json["message"]
    assert "TRACTCAST_SERVING_SOURCE=s3" in answer.json["message"]
    assert writer.serving_version() == "v0002-ensemble"  # nothing moved
    assert not Path(replica.config["TRACTCAST_SETTINGS"].store).exists()


def test_with_s3_away_the_registry_answers_from_its_cache(
    client: FlaskClient, replica: Flask, writer: Registry
) -> None:
    assert client.get("/v1/models/current").status_code == 200  # the bundle is cached now
    settings: Settings = replica.config["TRACTCAST_SETTINGS"]
    away = create_app(settings.with_(s3_endpoint_url=f"http://127.0.0.1:{free_port()}"))
    try:
        restarted = away.test_client()
        current = restarted.get("/v1/models/current")
        assert current.status_code == 200 and current.json["version"] == "v0002-ensemble"
        assert restarted.get("/readyz").status_code == 200
    finally:
        away.extensions["tractcast.registry"].close()


def test_the_registry_fetches_into_a_cache_of_its_own_beside_an_api_replica(
    client: FlaskClient, replica: Flask
) -> None:
    """The live skill reads every bundle of the champion: in the API's cache it would evict
    what an API replica on the same host serves from (it keeps the newest few)."""
    assert client.get("/v1/models/current").status_code == 200
    cache = Path(replica.config["TRACTCAST_SETTINGS"].serving_cache)
    assert not (cache / "bundles").exists()
    assert [p.name for p in (cache / "registry" / "bundles").iterdir()] == ["v0002-ensemble@d1"]
