"""Every registered candidate as an MLflow run: parameters, metrics, tags and its files.

A run is named and tagged after its version, so logging a version again finds the finished run
instead of making a second one. When the tracking server does not answer, retraining goes on:
the version joins the store's tracking backlog (tracking-pending/<version>.json, with the
error), a warning is logged, and the backlog is logged with the next retrain or by
`flush_pending` (the retrainer's `tractcast.sync_tracking` task).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from tractcast.clock import utc_now
from tractcast.errors import NotFound, Unavailable
from tractcast.registry.store import TMP_PREFIX, LocalModelStore, ModelVersion, check_version
from tractcast.settings import Settings

log = logging.getLogger(__name__)

VERSION_TAG = "tractcast.version"
# Bounded retries: a tracking server that is down must not hold a retrain for minutes. The
# operator's own MLFLOW_* variables win.
_MLFLOW_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # stdout is the CLI's --json answer
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


@dataclass
class TrackingReport:
    """Versions logged (version -> run id) and versions left in the backlog (-> why)."""

    logged: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)


def log_candidate(settings: Settings, version: ModelVersion, *, promoted: bool) -> str | None:
    """Log one version as an MLflow run and return its id; None when MLflow is not configured.

    Raises Unavailable when the tracking server cannot be reached or refuses the run.
    """
    if not settings.mlflow_uri:
        return None
    if version.path is None:
        raise NotFound(f"{version.version} has no files to log")
    _check_server(settings.mlflow_uri)
    try:
        with _mlflow_env():
            return _log_run(settings, version, promoted)
    except Unavailable:
        raise
    except Exception as exc:  # MlflowException, requests' errors, OSError: all mean "not logged"
        raise Unavailable(f"MLflow did not take {version.version}: {_short(exc)}") from exc


def track_candidates(
    settings: Settings,
    store: LocalModelStore,
    versions: Iterable[str],
    promoted: str | None,
) -> TrackingReport:
    """Log a retrain's versions (and the backlog first); never raises for MLflow's sake."""
    report = TrackingReport()
    if not settings.mlflow_uri:
        return report
    backlog = _read_pending(store)
    wanted = {**backlog, **{v: {"promoted": v == promoted} for v in versions}}
    outage: str | None = None  # once the server failed, the rest wait for the next attempt
    for name, entry in wanted.items():
        try:
            found = store.get_version(name)
        except NotFound:
            _drop_pending(store, name)  # a version that no longer exists has nothing to log
            continue
        try:
            if outage is not None:
                raise Unavailable(outage)
            report.logged[name] = str(
                log_candidate(settings, found, promoted=bool(entry.get("promoted")))
            )
        except Unavailable as exc:
            outage = exc.message
            report.pending[name] = exc.message
            try:
                _write_pending(store, name, bool(entry.get("promoted")), exc.message)
            except OSError as write_error:  # disk full: the warning below still says it
                log.error("could not record %s in the MLflow backlog: %s", name, write_error)
            continue
        _drop_pending(store, name)
    if report.pending:
        log.warning(
            "MLflow at %s did not take %d version(s), kept in %s to log later: %s",
            settings.mlflow_uri, len(report.pending), store.tracking_backlog_dir(),
            next(iter(report.pending.values())),
        )  # fmt: skip
    return report


def flush_pending(settings: Settings, store: LocalModelStore) -> TrackingReport:
    """Log the versions the tracking server missed while it was down."""
    return track_candidates(settings, store, [], promoted=None)


def pending_versions(store: LocalModelStore) -> list[str]:
    """Versions waiting to be logged to MLflow, by name."""
    return sorted(_read_pending(store))


def _log_run(settings: Settings, version: ModelVersion, promoted: bool) -> str:
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    experiment_id = _experiment_id(client, settings.mlflow_experiment, MlflowException)
    query = f"tags.`{VERSION_TAG}` = '{check_version(version.version)}'"
    for run in client.search_runs([experiment_id], filter_string=query, max_results=10):
        if run.info.status == RunStatus.to_string(RunStatus.FINISHED):
            return str(run.info.run_id)
        client.delete_run(run.info.run_id)  # an attempt cut short: start clean
    manifest = version.manifest
    tags = {
        VERSION_TAG: version.version,
        "tractcast.family": version.family,
        "tractcast.data_version": version.data_version,
        "tractcast.trigger": str(manifest.get("trigger", "")),
        "tractcast.promoted": "true" if promoted else "false",
        "mlflow.source.git.commit": str(manifest.get("git_commit", "unknown")),
    }
    run = client.create_run(experiment_id, run_name=version.version, tags=tags)
    run_id = str(run.info.run_id)
    stamp = int(datetime.now(UTC).timestamp() * 1000)
    params = [Param(key, value) for key, value in run_params(manifest).items()]
    metrics = [Metric(key, value, stamp, step) for key, value, step in run_metrics(version.metrics)]
    for start in range(0, max(len(params), len(metrics)), 100):  # MLflow's batch limits
        client.log_batch(
            run_id, metrics=metrics[start : start + 100], params=params[start : start + 100]
        )
    assert version.path is not None
    client.log_artifacts(run_id, str(version.path))  # model.h5, metrics.json, manifest.json ...
    client.set_terminated(run_id)
    return run_id


def run_params(manifest: dict[str, Any]) -> dict[str, str]:
    """The manifest's hyperparameters and data description as flat MLflow params."""
    params = {f"hp.{k}": v for k, v in dict(manifest.get("hyperparameters", {})).items()}
    params.update({f"ingest.{k}": v for k, v in dict(manifest.get("ingest", {})).items()})
    for key in ("tracts", "days", "tract_id_field", "data_version"):
        if key in manifest:
            params[key] = manifest[key]
    return {key: str(value)[:500] for key, value in params.items() if value is not None}


def run_metrics(metrics: dict[str, Any]) -> list[tuple[str, float, int]]:
    """(key, value, step): overall scores at step 0, per-horizon scores at step = horizon."""
    rows = [(key, float(value), 0) for key, value in metrics.items() if _finite(value)]
    for entry in metrics.get("per_horizon", []) or []:
        step = int(entry.get("horizon", 0))
        rows += [
            (f"{key}_by_horizon", float(value), step)
            for key, value in entry.items()
            if key != "horizon" and _finite(value)
        ]
    return rows


def _experiment_id(client: Any, name: str, mlflow_error: type[Exception]) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except mlflow_error:  # another process created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _check_server(uri: str) -> None:
    """A quick look at an HTTP tracking server, so an outage costs seconds, not retries."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=3)
    except requests.RequestException as exc:
        raise Unavailable(f"MLflow at {uri} does not answer: {_short(exc)}") from exc
    if response.status_code != 200:
        raise Unavailable(f"MLflow at {uri} answered {response.status_code} to /health")


@contextmanager
def _mlflow_env() -> Iterator[None]:
    added = [key for key in _MLFLOW_ENV if key not in os.environ]
    for key in added:
        os.environ[key] = _MLFLOW_ENV[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _read_pending(store: LocalModelStore) -> dict[str, dict[str, Any]]:
    directory = store.tracking_backlog_dir()
    if not directory.is_dir():
        return {}
    entries = {}
    for path in sorted(directory.glob("*.json")):
        try:
            entries[path.stem] = dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a half-written entry of a crashed writer; the version is logged again
    return entries


def _write_pending(store: LocalModelStore, version: str, promoted: bool, error: str) -> None:
    directory = store.tracking_backlog_dir()
    directory.mkdir(parents=True, exist_ok=True)
    entry = {
        "version": version,
        "promoted": promoted,
        "error": error,
        "at": utc_now(),
    }
    tmp = directory / f"{TMP_PREFIX}{secrets.token_hex(6)}"
    tmp.write_text(json.dumps(entry))
    os.replace(tmp, directory / f"{check_version(version)}.json")


def _drop_pending(store: LocalModelStore, version: str) -> None:
    (store.tracking_backlog_dir() / f"{version}.json").unlink(missing_ok=True)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
