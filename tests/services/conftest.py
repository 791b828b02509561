"""Fixtures of the service tests that talk to a real S3-compatible server (moto's, on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.faults.processes import Server, moto_server


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server: Server = moto_server(tmp_path_factory.mktemp("moto"))
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's server takes any credentials; boto3 only needs some, and a region."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
