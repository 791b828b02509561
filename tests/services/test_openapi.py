"""The OpenAPI document the api serves states the limits the services enforce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.api.app import create_app
from tractcast.geo.client import LayerReplica
from tractcast.registry.store import RegistryReader
from tractcast.serving.holder import BundleHolder
from tractcast.settings import Settings


class NoGeo:
    """A geo client that is never reached: every request below stops before asking geo."""

    def __init__(self) -> None:
        self.replica = LayerReplica()

    def ready(self) -> bool:
        return False

    def load_replica_until_held(self) -> bool:
        return False


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    (tmp_path / "bundles").mkdir()
    settings = Settings(store=tmp_path, horizon=7)  # not the default 14
    app = create_app(settings, geo=NoGeo(), holder=BundleHolder(RegistryReader(tmp_path)))  # type: ignore[arg-type]
    return app.test_client()


def query_schemas(doc: dict[str, Any], path: str) -> dict[str, Any]:
    return {p["name"]: p["schema"] for p in doc["paths"][path]["get"]["parameters"]}


def test_the_horizon_limit_is_the_configured_horizon(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").json
    horizon = query_schemas(doc, "/v1/forecast")["horizon"]
    assert horizon["maximum"] == horizon["default"] == 7
    schemas = doc["components"]["schemas"]
    assert schemas["PointsRequest"]["properties"]["horizon"]["maximum"] == 7
    assert schemas["Forecast"]["properties"]["forecast"]["maxItems"] == 7
    refused = client.get("/v1/forecast?lat=45.46&lon=9.19&horizon=8")
    assert refused.status_code == 400 and "between 1 and 7" in refused.json["message"]


def test_radius_and_coordinates_are_refused_just_past_the_documented_maximum(
    client: FlaskClient,
) -> None:
    doc = client.get("/openapi.json").json
    limits = query_schemas(doc, "/v1/stats/radius")
    radius, lat = limits["radius_km"]["maximum"], limits["lat"]["maximum"]
    at_limit = client.get(f"/v1/stats/radius?lat={lat}&lon=0&radius_km={radius}")
    assert at_limit.status_code == 503  # valid input; no bundle is served yet
    for query in (f"lat={lat}&lon=0&radius_km={radius + 1}", f"lat={lat + 1}&lon=0&radius_km=1"):
        assert client.get(f"/v1/stats/radius?{query}").status_code == 400


def test_a_batch_over_the_documented_size_is_refused(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").json
    most = doc["components"]["schemas"]["PointsRequest"]["properties"]["points"]["maxItems"]
    lookup = doc["paths"]["/v1/tracts/lookup"]["post"]["requestBody"]["content"]
    assert lookup["application/json"]["schema"]["properties"]["points"]["maxItems"] == most
    points = [{"lat": 45.0, "lon": 9.0}] * (most + 1)
    assert client.post("/v1/forecast", json={"points": points}).status_code == 413
