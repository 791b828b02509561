"""Fixtures for the registry tests: a store, a metadata store, tiny bundles, moto's S3 server."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from tests.faults.processes import Server, moto_server

from tractcast.registry.metadata import SqlMetadataStore
from tractcast.registry.mirror import S3ArtifactMirror
from tractcast.registry.store import LocalModelStore, ModelVersion
from tractcast.serving.bundle import Bundle, ForecastDay, TractForecast, bundle_id_for

HORIZON = 14


def _tiny_bundle(version: str, data_version: str = "d1", tracts: int = 3) -> Bundle:
    days = tuple(
        ForecastDay(f"2024-03-{day:02d}", 2.0 + day, 1.0 + day, 3.0 + day)
        for day in range(2, 2 + HORIZON)
    )
    return Bundle(
        bundle_id=bundle_id_for(version, data_version),
        model_version=version,
        data_version=data_version,
        as_of="2024-03-01",
        created_at="2024-03-01T06:00:00+00:00",
        horizon=HORIZON,
        tracts={
            f"T{i}": TractForecast(f"T{i}", "2024-03-01", 100 * i, i, days) for i in range(tracts)
        },
    )


def _write_weights(directory: Path) -> None:
    (directory / "model.h5").write_bytes(b"not really hdf5")


@pytest.fixture
def tiny_bundle() -> Callable[..., Bundle]:
    """Build a bundle of a few tracts and 14 forecast days for a version."""
    return _tiny_bundle


@pytest.fixture
def write_weights() -> Callable[[Path], None]:
    """Stand-in for a forecaster's save(): writes a fake model.h5."""
    return _write_weights


@pytest.fixture
def store(tmp_path: Path) -> LocalModelStore:
    return LocalModelStore(tmp_path / "store")


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[SqlMetadataStore]:
    meta = SqlMetadataStore(f"sqlite:///{tmp_path / 'metadata.db'}")
    yield meta
    meta.close()


@pytest.fixture
def make_version(store: LocalModelStore) -> Callable[..., ModelVersion]:
    """Create a version with a bundle for data version `data_version` (unless bundle=False)."""

    def make(family: str = "lstm", data_version: str = "d1", bundle: bool = True) -> ModelVersion:
        version = store.create_version(
            family,
            _write_weights,
            metrics={"mae": 1.0},
            manifest={"data_version": data_version, "git_commit": "abc123"},
        )
        if bundle:
            store.add_bundle(_tiny_bundle(version.version, data_version))
        return version

    return make


CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and a region in the environment, for what builds its own boto3 client."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = moto_server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def endpoint(s3_server: Server) -> str:
    return f"http://127.0.0.1:{s3_server.port}"


@pytest.fixture
def s3(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS)


@pytest.fixture
def bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"tractcast-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def mirror(s3, bucket: str) -> S3ArtifactMirror:  # type: ignore[no-untyped-def]
    return S3ArtifactMirror(bucket, client=s3)
