"""How a retrain is started: queued on Celery with a broker, on a local thread without one."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.retrainer.celery_app import RETRAIN_TASK, make_celery
from tractcast.errors import Unavailable
from tractcast.settings import Settings

_local_runs: dict[str | None, threading.Lock] = {}  # layer -> its one local run at a time
_local_runs_lock = threading.Lock()
BROKER_DOWN = "the task queue cannot be reached; try again later"


def enqueue_retrain(settings: Settings, trigger: str, layer: str | None = None) -> dict[str, Any]:
    """Start a retrain (of the named tract layer) without waiting for it; says how it was
    started."""
    named = {} if layer is None else {"layer": layer}
    if settings.broker_url:
        check_broker(settings.broker_url)
        try:
            result = celery_for(settings.broker_url).send_task(
                RETRAIN_TASK, args=(trigger,), kwargs=named
            )
        except (OperationalError, RedisConnectionError, RedisTimeoutError) as exc:  # none queued
            raise Unavailable(BROKER_DOWN) from exc
        return {"status": "queued", "task_id": result.id, "trigger": trigger, **named}
    with _local_runs_lock:
        local_run = _local_runs.setdefault(layer, threading.Lock())
    if not local_run.acquire(blocking=False):
        reason = "a retrain is already running"
        return {"status": "skipped", "reason": reason, "trigger": trigger, **named}
    thread = threading.Thread(target=_run_locally, args=(trigger, layer, local_run), daemon=True)
    thread.start()
    return {"status": "started", "task_id": None, "trigger": trigger, **named}


def _run_locally(trigger: str, layer: str | None, local_run: threading.Lock) -> None:
    try:
        from services.retrainer.tasks import retrain_task

        retrain_task.apply(args=(trigger,), kwargs={} if layer is None else {"layer": layer})
    finally:
        local_run.release()


def check_broker(broker_url: str) -> None:
    """Unavailable unless a Redis broker answers a ping within a second or two.

    Celery itself would keep a request waiting ~20 s reconnecting to the result store first.
    """
    if not broker_url.startswith(("redis://", "rediss://")):
        return
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise Unavailable(BROKER_DOWN) from exc
    finally:
        client.close()


@cache
def celery_for(broker_url: str) -> Celery:
    """One Celery client per broker, built from settings rather than the import-time app."""
    return make_celery(Settings(broker_url=broker_url))
