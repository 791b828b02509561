"""Celery tasks: they take ids and plain arguments, are idempotent, and call the core.

A retrain runs at most once at a time per tract layer across every worker: it holds a lock in
Redis (a key naming the task and the layer, set only if absent, with a lifetime the running task
keeps renewing); retrains of different layers run in parallel. A
second trigger while one runs is skipped and recorded; a task run again after it finished
(a redelivery, or the same id sent twice) returns the first run's answer instead of training
again. On one machine the pipeline's own file lock also refuses a second retrain of a store,
which covers `tractcast train` from the command line; both say "a retrain is already running".
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.utils.log import get_task_logger

from services.retrainer.celery_app import RETRAIN_TASK, SYNC_TASK, celery
from tractcast.clock import utc_now
from tractcast.errors import Conflict
from tractcast.registry import Registry
from tractcast.settings import Settings
from tractcast.tract_layers import settings_of_layer, tract_layers

log = get_task_logger(__name__)

LOCK_KEY = "tractcast:retrain:lock"
SKIPPED_KEY = "tractcast:retrain:skipped"  # the latest skipped triggers, newest first
DONE_PREFIX = "tractcast:retrain:done:"  # + task id: the answer of a finished run
DONE_TTL = 30 * 24 * 3600
SKIPPED_KEPT = 100


@celery.task(name=RETRAIN_TASK, bind=True, max_retries=None)
def retrain_task(  # type: ignore[no-untyped-def]
    self, trigger: str = "manual", layer: str | None = None
) -> dict[str, Any]:
    """Retrain a layer on its newest data, once per task id and one at a time per layer."""
    settings = settings_of_layer(Settings.from_env(), layer)
    answer = run_retrain(settings, str(self.request.id), trigger, layer)
    if answer["status"] == "wait":
        raise self.retry(countdown=answer["retry_in"])
    return answer


@celery.task(name=SYNC_TASK)
def sync_artifacts_task() -> dict[str, Any]:
    """Log what MLflow missed while it was down and bring the S3 mirror up to date (of every
    tract layer)."""
    settings = Settings.from_env()
    if settings.layers is None:
        return sync_artifacts(settings)
    synced = {layer.name: sync_artifacts(layer.settings) for layer in tract_layers(settings)}
    return {"status": "done", "layers": synced}


def sync_artifacts(settings: Settings) -> dict[str, Any]:
    """Flush the MLflow backlog and sync the S3 mirror; both are idempotent."""
    registry = Registry.open(settings)
    try:
        tracked = registry.flush_tracking()
        mirrored = registry.mirror()
    finally:
        registry.close()
    return {
        "status": "done",
        "logged": sorted(tracked.logged),
        "pending": sorted(tracked.pending),
        "mirrored": None if mirrored is None else dataclasses.asdict(mirrored),
    }


def run_retrain(
    settings: Settings, task_id: str, trigger: str, layer: str | None = None
) -> dict[str, Any]:
    """One retrain of a layer (its settings) for a task; "skipped" when another of the layer
    runs, "wait" when this one may still.

    Without a Redis broker (the embedded default) the pipeline's file lock is the only guard.
    """
    if not _redis_broker(settings):
        return _retrain(settings, trigger)
    import redis

    client = redis.Redis.from_url(
        str(settings.broker_url), socket_timeout=10, socket_connect_timeout=5
    )
    try:
        return _run_once(client, settings, task_id, trigger, layer)
    finally:
        client.close()


def lock_key(layer: str | None = None) -> str:
    """The Redis key of a layer's retrain lock (the one unnamed layer keeps the plain key)."""
    return LOCK_KEY if layer is None else f"{LOCK_KEY}:{layer}"


def _run_once(
    client: Any, settings: Settings, task_id: str, trigger: str, layer: str | None
) -> dict[str, Any]:
    finished = _finished(client, task_id)
    if finished is not None:
        return finished
    lock = RetrainLock(client, lock_ttl(settings), lock_key(layer))
    holder = lock.acquire(task_id, trigger)
    if holder is not None and holder.get("task_id") == task_id:
        # this task again, while its first delivery holds the lock: a dead holder stops
        # renewing and the lock lapses within one lifetime; a live one keeps it
        holder = lock.acquire(task_id, trigger, wait=lock.ttl + 2)
        if holder is not None:
            retry_in = int(min(600, max(2 * lock.ttl, settings.visibility_timeout // 2)))
            log.info("retrain %s still runs elsewhere: looking again in %d s", task_id, retry_in)
            return {"status": "wait", "retry_in": retry_in, "trigger": trigger}
    if holder is not None:
        return record_skip(client, task_id, trigger, holder)
    with lock.renewed():
        finished = _finished(client, task_id)  # its first delivery may have ended as we waited
        if finished is not None:
            return finished
        _sweep_abandoned_writes(settings)
        answer = _retrain(settings, trigger)
        if answer["status"] == "skipped":  # the store's own lock: a retrain outside Celery
            return record_skip(client, task_id, trigger, {"reason": answer["reason"]})
        client.set(DONE_PREFIX + task_id, json.dumps(answer), ex=DONE_TTL)
    return answer


def record_skip(client: Any, task_id: str, trigger: str, holder: dict[str, Any]) -> dict[str, Any]:
    """Answer and remember a trigger that came while a retrain was running."""
    running = holder.get("task_id")
    reason = holder.get("reason") or (
        f"a retrain is already running (task {running}, trigger {holder.get('trigger')}, "
        f"since {holder.get('since')})"
    )
    entry = {"status": "skipped", "reason": reason, "trigger": trigger, "task_id": task_id}
    if running:
        entry["running"] = running
    log.warning("retrain %s (%s) skipped: %s", task_id, trigger, reason)
    with client.pipeline() as pipe:
        pipe.lpush(SKIPPED_KEY, json.dumps({**entry, "at": utc_now()}))
        pipe.ltrim(SKIPPED_KEY, 0, SKIPPED_KEPT - 1)
        pipe.execute()
    return entry


def recent_skips(client: Any, limit: int = 10) -> list[dict[str, Any]]:
    """The latest triggers skipped because a retrain was running, newest first."""
    return [json.loads(item) for item in client.lrange(SKIPPED_KEY, 0, limit - 1)]


def running_retrain(settings: Settings, layer: str | None = None) -> dict[str, Any] | None:
    """Who holds a layer's retrain lock now (task id, trigger, host, pid, since), or None."""
    if not _redis_broker(settings):
        return None
    import redis

    client = redis.Redis.from_url(str(settings.broker_url), socket_timeout=5)
    try:
        value = client.get(lock_key(layer))
    finally:
        client.close()
    return None if value is None else dict(json.loads(value))


def lock_ttl(settings: Settings) -> float:
    """Lifetime of the retrain lock: half the visibility timeout (within 5 s to 60 s).

    A redelivered task arrives a visibility timeout after its dead worker took it, so by then
    the dead worker's lock has lapsed and the task runs at once.
    """
    return float(min(60, max(5, settings.visibility_timeout // 2)))


class RetrainLock:
    """The Redis key naming the one running retrain, kept alive while it runs."""

    def __init__(self, client: Any, ttl: float, key: str = LOCK_KEY) -> None:
        self.client = client
        self.ttl = ttl
        self.key = key
        self._lock: Any = None

    def acquire(self, task_id: str, trigger: str, wait: float = 0.0) -> dict[str, Any] | None:
        """Take the lock (None), or return who holds it after waiting up to `wait` seconds."""
        token = json.dumps(
            {
                "task_id": task_id,
                "trigger": trigger,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": utc_now(),
            }
        )
        lock = self.client.lock(self.key, timeout=self.ttl, thread_local=False)
        deadline = time.monotonic() + wait
        while not lock.acquire(blocking=False, token=token):
            value = self.client.get(self.key)
            if time.monotonic() >= deadline and value is not None:
                return dict(json.loads(value))
            time.sleep(0.5)
        self._lock = lock
        return None

    @contextmanager
    def renewed(self) -> Iterator[None]:
        """Renew the held lock every third of its lifetime until the block ends, then free it."""
        from redis.exceptions import LockError, RedisError

        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    self._lock.extend(self.ttl, replace_ttl=True)
                except LockError:
                    log.error("the retrain lock was lost; the store's file lock still guards")
                    return
                except RedisError as exc:  # Redis away for a moment: try again next time
                    log.warning("retrain lock not renewed: %s", exc)

        thread = threading.Thread(target=renew, name="retrain-lock", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            try:
                self._lock.release()
            except (LockError, RedisError) as exc:  # lapsed or unreachable: it expires anyway
                log.warning("retrain lock not released: %s", exc)


def _sweep_abandoned_writes(settings: Settings) -> None:
    """What a killed writer left in the store goes before a new retrain writes there."""
    registry = Registry.open(settings)
    try:
        registry.sweep_abandoned()
    finally:
        registry.close()


def _finished(client: Any, task_id: str) -> dict[str, Any] | None:
    done = client.get(DONE_PREFIX + task_id)
    if done is None:
        return None
    log.info("retrain %s already finished: returning its answer", task_id)
    return dict(json.loads(done))


def _retrain(settings: Settings, trigger: str) -> dict[str, Any]:
    from tractcast.workflows.retrain import retrain

    try:
        outcome = retrain(settings, trigger=trigger)
    except Conflict as exc:
        return {"status": "skipped", "reason": exc.message, "trigger": trigger}
    return {"status": "done", **dataclasses.asdict(outcome)}


def _redis_broker(settings: Settings) -> bool:
    return bool(settings.broker_url and settings.broker_url.startswith(("redis://", "rediss://")))
