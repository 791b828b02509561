"""API and geo replicas on a host without the store (TRACTCAST_SERVING_SOURCE=s3): they serve what
the metadata database names and the layer the mirror holds, from moto's S3 server, and from their
cache when S3 is away."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import boto3
import pytest
from flask.testing import FlaskClient
from tests.faults.processes import free_port
from tests.services.test_api_app import MILAN, FakeGeo, make_bundle, publish

from services.api.app import create_app
from services.geo.app import create_app as create_geo_app
from tractcast.data.demo import ensure_demo_data
from tractcast.registry.metadata import metadata_store_of
from tractcast.registry.mirror import S3ArtifactMirror, mirror_from_settings
from tractcast.registry.store import RegistryReader
from tractcast.settings import DEFAULT_LAYER, Settings
from tractcast.tract_layers import tract_layers


def mirrored_champion(
    folder: Path, s3_endpoint: str, model_version: str, layer: str = DEFAULT_LAYER
) -> tuple[str, str, S3ArtifactMirror]:
    """A store in `folder` ("the other host") serving `model_version` for `layer`, mirrored to
    a bucket of its own, with the champion recorded in a database of its own: (bucket,
    database, mirror)."""
    bucket = f"tractcast-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    elsewhere = folder / "writer-store"
    (elsewhere / "bundles").mkdir(parents=True)
    bundle = make_bundle(model_version, "d1")
    publish(elsewhere, bundle)
    database = f"sqlite:///{folder / 'shared.db'}"
    writer = Settings(
        store=elsewhere,
        database_url=database,
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        layer=layer,
    )
    metadata = metadata_store_of(writer)
    metadata.record_serving(bundle.bundle_id, bundle.model_version)
    metadata.close()
    mirror = mirror_from_settings(writer)
    assert mirror is not None
    mirror.sync(RegistryReader(elsewhere))
    return bucket, database, mirror


@pytest.fixture
def replica_settings(tmp_path: Path, s3_endpoint: str, aws_credentials: None) -> Settings:
    """A store on "the other host", mirrored to S3, with its champion recorded in the database."""
    bucket, database, mirror = mirrored_champion(tmp_path, s3_endpoint, "v0002-lstm")
    _, tracts = ensure_demo_data(Settings(demo_dir=tmp_path / "writer-demo"))
    mirror.sync_layer(Path(tracts))
    return Settings(
        store=tmp_path / "replica-store-never-written",
        serving_source="s3",
        serving_cache=tmp_path / "cache",
        database_url=database,
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        geo_url="http://geo.invalid",
    )


def client_of(settings: Settings) -> FlaskClient:
    return create_app(settings, geo=FakeGeo()).test_client()  # type: ignore[arg-type]


def metric(client: FlaskClient, name: str) -> str | None:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return line.split()[-1]
    return None


def test_a_replica_serves_the_bundle_the_database_names_from_s3(
    replica_settings: Settings,
) -> None:
    client = client_of(replica_settings)
    forecast = client.get("/v1/forecast", query_string=MILAN)
    assert forecast.status_code == 200 and forecast.json["model_version"] == "v0002-lstm"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["artifact_store"] == "ok" and ready.json["serving_from"] == "s3"
    assert metric(client, "tractcast_artifact_store_up") == "1.0"
    assert not Path(replica_settings.store).exists()  # nothing of the store on this host


def test_a_replica_started_while_s3_is_down_serves_its_cache_and_says_so(
    replica_settings: Settings,
) -> None:
    assert client_of(replica_settings).get("/v1/forecast", query_string=MILAN).status_code == 200
    s3_down = replica_settings.with_(s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    client = client_of(s3_down)  # a restart, with nothing listening where S3 was
    forecast = client.get("/v1/forecast", query_string=MILAN)
    assert forecast.status_code == 200 and forecast.json["model_version"] == "v0002-lstm"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["artifact_store"] == "unreachable" and ready.json["serving_from"] == "cache"
    assert metric(client, "tractcast_artifact_store_up") == "0.0"


def test_a_replica_with_no_cache_and_no_s3_is_not_ready(replica_settings: Settings) -> None:
    s3_down = replica_settings.with_(s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    client = client_of(s3_down)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["artifact_store"] == "unreachable"
    assert client.get("/v1/forecast", query_string=MILAN).status_code == 503


def test_a_geo_replica_loads_the_mirrors_layer_and_its_cached_copy_when_s3_is_away(
    replica_settings: Settings,
) -> None:
    center = {"lat": "44.5", "lon": "10.75"}  # inside the demo tracts
    client = create_geo_app(replica_settings).test_client()
    assert client.get("/v1/tracts/lookup", query_string=center).status_code == 200
    assert client.get("/readyz").json["artifact_store"] == "ok"

    s3_down = replica_settings.with_(s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    restarted = create_geo_app(s3_down).test_client()
    ready = restarted.get("/readyz")
    assert ready.status_code == 200 and ready.json["tracts"] == 16
    assert ready.json["artifact_store"] == "unreachable" and ready.json["serving_from"] == "cache"
    assert restarted.get("/v1/tracts/lookup", query_string=center).status_code == 200

    elsewhere = s3_down.with_(serving_cache=Path(replica_settings.serving_cache) / "empty")
    assert create_geo_app(elsewhere).test_client().get("/readyz").status_code == 503


def test_a_geo_replica_follows_a_new_layer_copy_with_no_restart_and_no_request_failing(
    replica_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.geo.app.PROBE_INTERVAL", 0.2)  # seconds between looks
    center = {"lat": "44.5", "lon": "10.75"}
    client = create_geo_app(replica_settings).test_client()
    before = client.get("/v1/tracts/lookup", query_string=center).json["tract"]
    etag = client.get("/v1/tracts/replica").headers["ETag"]
    near = {**center, "radius_km": "30"}
    assert not any(
        t["name"].startswith("New ")
        for t in client.get("/v1/tracts/radius", query_string=near).json["tracts"]
    )

    # the same shapes, every tract renamed: a new layer copy in the mirror
    _, tracts = ensure_demo_data(Settings(demo_dir=tmp_path / "writer-demo"))
    layer = json.loads(Path(tracts).read_text())
    for feature in layer["features"]:
        feature["properties"]["name"] = f"New {feature['properties']['name']}"
    renamed = tmp_path / "renamed" / "tracts.geojson"
    renamed.parent.mkdir()
    renamed.write_text(json.dumps(layer))
    S3ArtifactMirror(str(replica_settings.s3_bucket), replica_settings.s3_endpoint_url).sync_layer(
        renamed
    )

    answers = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.get("/v1/tracts/lookup", query_string=center)
        answers.append((response.status_code, (response.json.get("tract") or {}).get("name")))
        if answers[-1][1] != before["name"]:
            break
        time.sleep(0.02)
    assert {status for status, _ in answers} == {200}
    assert answers[-1] == (200, f"New {before['name']}")
    assert client.get("/v1/tracts/replica").headers["ETag"] != etag  # the API's copy follows
    radius = client.get("/v1/tracts/radius", query_string=near).json
    assert radius["tracts"] and all(t["name"].startswith("New ") for t in radius["tracts"])


def two_layer_replica(tmp_path: Path, s3_endpoint: str, provinces_bucket: str | None) -> Settings:
    """A replica of two layers, each with its own bucket and database: the municipalities'
    champion v0002-lstm, the provinces' v0005-lstm (in `provinces_bucket` when given instead)."""
    layers = {}
    for name, version in (("municipalities", "v0002-lstm"), ("provinces", "v0005-lstm")):
        layers[name] = mirrored_champion(tmp_path / name, s3_endpoint, version, name)[:2]
    if provinces_bucket is not None:
        layers["provinces"] = (provinces_bucket, layers["provinces"][1])
    (tmp_path / "layers.toml").write_text(
        "".join(
            f'[[layers]]\nname = "{name}"\ns3_bucket = "{bucket}"\ndatabase_url = "{database}"\n'
            for name, (bucket, database) in layers.items()
        )
    )
    return Settings(
        store=tmp_path / "replica-store-never-written",
        layers=str(tmp_path / "layers.toml"),
        serving_source="s3",
        serving_cache=tmp_path / "cache",
        s3_endpoint_url=s3_endpoint,
        geo_url="http://geo.invalid",
    )


def test_a_replica_of_two_layers_says_where_each_serves_from(
    tmp_path: Path, s3_endpoint: str, aws_credentials: None
) -> None:
    client = client_of(two_layer_replica(tmp_path, s3_endpoint, provinces_bucket=None))
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert (ready.json["model_version"], ready.json["artifact_store"]) == ("v0002-lstm", "ok")
    from_s3 = {"data_version": "d1", "artifact_store": "ok", "serving_from": "s3"}
    assert ready.json["layers"] == {
        "municipalities": {"model_version": "v0002-lstm", **from_s3},
        "provinces": {"model_version": "v0005-lstm", **from_s3},
    }
    assert metric(client, 'tractcast_artifact_store_up{layer="municipalities"}') == "1.0"
    assert metric(client, 'tractcast_artifact_store_up{layer="provinces"}') == "1.0"


def test_a_layer_whose_bucket_does_not_answer_is_named_while_the_first_serves_from_s3(
    tmp_path: Path, s3_endpoint: str, aws_credentials: None
) -> None:
    missing = f"tractcast-missing-{secrets.token_hex(4)}"
    client = client_of(two_layer_replica(tmp_path, s3_endpoint, provinces_bucket=missing))
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "provinces" in ready.json["message"]
    assert (ready.json["artifact_store"], ready.json["serving_from"]) == ("ok", "s3")  # the first
    assert ready.json["layers"]["provinces"] == {
        "model_version": None,
        "data_version": None,
        "artifact_store": "unreachable",
        "serving_from": "cache",
    }
    assert ready.json["layers"]["municipalities"]["model_version"] == "v0002-lstm"
    assert metric(client, 'tractcast_artifact_store_up{layer="municipalities"}') == "1.0"
    assert metric(client, 'tractcast_artifact_store_up{layer="provinces"}') == "0.0"


def test_a_geo_replica_of_two_layers_says_where_each_layer_copy_comes_from(
    tmp_path: Path, s3_endpoint: str, aws_credentials: None
) -> None:
    _, tracts = ensure_demo_data(Settings(demo_dir=tmp_path / "writer-demo"))
    missing = f"tractcast-missing-{secrets.token_hex(4)}"
    for provinces_bucket in (None, missing):
        folder = tmp_path / ("both" if provinces_bucket is None else "one")
        folder.mkdir()
        settings = two_layer_replica(folder, s3_endpoint, provinces_bucket)
        for layer in tract_layers(settings):
            mirror = mirror_from_settings(layer.settings)
            if mirror is not None and layer.settings.s3_bucket != missing:
                mirror.sync_layer(Path(tracts))
        ready = create_geo_app(settings).test_client().get("/readyz")
        from_s3 = {"artifact_store": "ok", "serving_from": "s3"}
        if provinces_bucket is None:
            assert ready.status_code == 200 and ready.json["layers"] == {
                "municipalities": 16,
                "provinces": 16,
            }
            assert ready.json["layer_stores"] == {"municipalities": from_s3, "provinces": from_s3}
        else:
            assert ready.status_code == 503 and ready.json["artifact_store"] == "ok"  # the first
            assert ready.json["layer_stores"] == {
                "municipalities": from_s3,
                "provinces": {"artifact_store": "unreachable", "serving_from": "cache"},
            }
