"""How a retrain is started: queued on Celery with a broker, on a local thread without one."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from celery import Celery

from services.retrainer.celery_app import RETRAIN_TASK, make_celery
from tractcast.settings import Settings

_local_run = threading.Lock()


def enqueue_retrain(settings: Settings, trigger: str) -> dict[str, Any]:
    """Start a retrain without waiting for it; says how it was started."""
    if settings.broker_url:
        result = celery_for(settings.broker_url).send_task(RETRAIN_TASK, args=(trigger,))
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


@cache
def celery_for(broker_url: str) -> Celery:
    """One Celery client per broker, built from settings rather than the import-time app."""
    return make_celery(Settings(broker_url=broker_url))
