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

_local_run = threading.Lock()
BROKER_DOWN = "the task queue cannot be reached; try again later"


def enqueue_retrain(settings: Settings, trigger: str) -> dict[str, Any]:
    """Start a retrain without waiting for it; says how it was started."""
    if settings.broker_url:
        check_broker(settings.broker_url)
        try:
            result = celery_for(settings.broker_url).send_task(RETRAIN_TASK, args=(trigger,))
        except (OperationalError, RedisConnectionError, RedisTimeoutError) as exc:  # none queued
            raise Unavailable(BROKER_DOWN) from exc
        return {"status": "queued", "task_id": result.id, "trigger": trigger}
    if not _local_run.acquire(blocking=False):
        return {"status": "skipped", "reason": "a retrain is already running", "trigger": trigger}
    thread = threading.Thread(target=_run_locally, args=(trigger,), daemon=True)
    thread.start()
    return {"status": "started", "task_id": None, "trigger": trigger}


def _run_locally(trigger: str) -> None:
    try:
        from services.retrainer.tasks import retrain_task

        retrain_task.apply(args=(trigger,))
    finally:
        _local_run.release()


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
