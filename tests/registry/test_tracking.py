"""MLflow logging against a real tracking server (SQLite backend, proxied artifacts in tmp)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient
from tests.faults.processes import Server, free_port, mlflow_server, moto_server

from tractcast.errors import Unavailable
from tractcast.registry.mirror import S3ArtifactMirror
from tractcast.registry.registry import Registry
from tractcast.registry.store import LocalModelStore, ModelVersion
from tractcast.registry.tracking import (
    VERSION_TAG,
    flush_pending,
    log_candidate,
    pending_versions,
    track_candidates,
)
from tractcast.settings import Settings
from tractcast.workflows.retrain import retrain

MANIFEST = {
    "data_version": "d41d8cd98f00",
    "git_commit": "0123456789abcdef",
    "trigger": "schedule",
    "tracts": 16,
    "hyperparameters": {"units": 32, "epochs": 3, "lookback": 28},
}
METRICS = {
    "mae": 4.5,
    "wape": 0.31,
    "coverage": None,  # nothing scored: not sent to MLflow
    "per_horizon": [{"horizon": 1, "mae": 3.0}, {"horizon": 2, "mae": 4.0}],
}


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture
def settings(tracking_server: Server, tmp_path: Path) -> Settings:
    # an experiment per test, so runs of other tests never match
    return Settings(
        store=tmp_path / "store",
        mlflow_uri=f"http://127.0.0.1:{tracking_server.port}",
        mlflow_experiment=f"tractcast-{tmp_path.name}",
    )


@pytest.fixture
def client(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.mlflow_uri)


def down(settings: Settings) -> Settings:
    return settings.with_(mlflow_uri=f"http://127.0.0.1:{free_port()}")


def lstm_version(store: LocalModelStore) -> ModelVersion:
    def write(directory: Path) -> None:
        (directory / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n weights")

    return store.create_version("lstm", write, METRICS, MANIFEST)


def runs_of(client: MlflowClient, settings: Settings, version: str) -> list:
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        return []
    query = f"tags.`{VERSION_TAG}` = '{version}'"
    return client.search_runs([experiment.experiment_id], filter_string=query)


def test_a_candidate_is_logged_with_params_metrics_tags_and_its_h5(
    settings: Settings, client: MlflowClient, tmp_path: Path
) -> None:
    store = LocalModelStore(settings.store)
    version = lstm_version(store)
    run_id = log_candidate(settings, version, promoted=True)

    run = client.get_run(run_id)
    assert run.info.run_name == version.version and run.info.status == "FINISHED"
    assert run.data.params["hp.units"] == "32" and run.data.params["tracts"] == "16"
    assert run.data.metrics["mae"] == 4.5 and run.data.metrics["wape"] == 0.31
    assert "coverage" not in run.data.metrics
    history = client.get_metric_history(run_id, "mae_by_horizon")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 4.0)]
    tags = run.data.tags
    assert tags[VERSION_TAG] == version.version
    assert tags["mlflow.source.git.commit"] == "0123456789abcdef"
    assert tags["tractcast.data_version"] == "d41d8cd98f00"
    assert (tags["tractcast.family"], tags["tractcast.trigger"]) == ("lstm", "schedule")
    assert tags["tractcast.promoted"] == "true"
    names = {item.path for item in client.list_artifacts(run_id)}
    assert {"model.h5", "metrics.json", "manifest.json"} <= names
    local = client.download_artifacts(run_id, "model.h5", str(tmp_path))
    assert Path(local).read_bytes() == b"\x89HDF\r\n\x1a\n weights"
    metrics_copy = client.download_artifacts(run_id, "metrics.json", str(tmp_path))
    assert json.loads(Path(metrics_copy).read_text())["mae"] == 4.5


def test_logging_a_version_again_finds_its_run_instead_of_making_another(
    settings: Settings, client: MlflowClient
) -> None:
    version = lstm_version(LocalModelStore(settings.store))
    first = log_candidate(settings, version, promoted=False)
    assert log_candidate(settings, version, promoted=False) == first
    assert [run.info.run_id for run in runs_of(client, settings, version.version)] == [first]


def test_without_a_tracking_uri_nothing_is_logged(tmp_path: Path) -> None:
    store = LocalModelStore(tmp_path / "store")
    assert log_candidate(Settings(store=store.root), lstm_version(store), promoted=False) is None


def test_a_tracking_server_that_is_down_is_unavailable(settings: Settings) -> None:
    version = lstm_version(LocalModelStore(settings.store))
    with pytest.raises(Unavailable, match="does not answer"):
        log_candidate(down(settings), version, promoted=False)


def test_versions_missed_while_mlflow_was_down_are_logged_when_it_is_back(
    settings: Settings, client: MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalModelStore(settings.store)
    first, second = lstm_version(store), lstm_version(store)
    with caplog.at_level(logging.WARNING):
        report = track_candidates(
            down(settings), store, [first.version, second.version], second.version
        )
    assert report.logged == {} and set(report.pending) == {first.version, second.version}
    assert pending_versions(store) == [first.version, second.version]
    assert "did not take 2 version(s)" in caplog.text

    flushed = flush_pending(settings, store)
    assert set(flushed.logged) == {first.version, second.version} and flushed.pending == {}
    assert pending_versions(store) == []
    (run,) = runs_of(client, settings, second.version)
    assert run.data.tags["tractcast.promoted"] == "true"


@pytest.mark.slow
def test_a_retrain_succeeds_while_mlflow_is_down_mirrors_to_s3_and_logs_later(
    settings: Settings,
    client: MlflowClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3 = moto_server(tmp_path / "moto")
    try:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        endpoint = f"http://127.0.0.1:{s3.port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="tractcast-store")
        mirror = S3ArtifactMirror("tractcast-store", endpoint)
        offline = down(settings).with_(
            demo_dir=tmp_path / "demo",
            epochs=1,
            backtest_origins=1,
            s3_bucket="tractcast-store",
            s3_endpoint_url=endpoint,
        )

        outcome = retrain(offline, trigger="test")

        registry = Registry.open(offline)

        store = registry.store
        assert outcome.bundle_id == store.current_bundle_id() is not None
        versions = sorted(outcome.versions.values())
        assert pending_versions(store) == versions
        assert mirror.mirrored_versions() == versions
        assert mirror.current_bundle_id() == outcome.bundle_id

        assert set(flush_pending(settings, store).logged) == set(versions)
        (lstm_run,) = runs_of(client, settings, outcome.versions["lstm"])
        assert "model.h5" in {item.path for item in client.list_artifacts(lstm_run.info.run_id)}
        (champion_run,) = runs_of(client, settings, outcome.champion or "")
        assert champion_run.data.tags["tractcast.promoted"] == "true"
        assert champion_run.data.tags["tractcast.data_version"] == outcome.data_version
    finally:
        s3.stop()


def test_the_sync_task_logs_the_backlog(settings: Settings, client: MlflowClient) -> None:
    from services.retrainer.tasks import sync_artifacts

    store = LocalModelStore(settings.store)
    version = lstm_version(store)
    track_candidates(down(settings), store, [version.version], promoted=None)
    assert sync_artifacts(settings) == {
        "status": "done",
        "logged": [version.version],
        "pending": [],
        "mirrored": None,
    }
    assert len(runs_of(client, settings, version.version)) == 1


def test_the_promotion_test_is_logged_with_the_metrics() -> None:
    from tractcast.registry.tracking import run_metrics

    metrics = {
        "wis": 12.5,
        "promotion": {"promote": True, "test": {"p_value": 0.01}},
        "promotion_promoted": 1.0,
        "promotion_p_value": 0.01,
        "promotion_effect": 0.2,
        "promotion_ratio_low": 0.7,
        "promotion_ratio_high": 0.9,
        "per_horizon": [{"horizon": 1, "relative_wis": 0.6}],
    }
    logged = {(key, step): value for key, value, step in run_metrics(metrics)}
    assert logged[("promotion_p_value", 0)] == 0.01 and logged[("promotion_promoted", 0)] == 1.0
    assert logged[("promotion_ratio_high", 0)] == 0.9 and logged[("wis", 0)] == 12.5
    assert logged[("relative_wis_by_horizon", 1)] == 0.6
