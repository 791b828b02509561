"""The Celery app: a `train` queue (the GPU host in production) and a default queue."""

from __future__ import annotations

import re
import uuid

from celery import Celery

from tractcast.settings import Settings

RETRAIN_TASK = "tractcast.retrain"
SYNC_TASK = "tractcast.sync_artifacts"


def make_celery(settings: Settings) -> Celery:
    """Celery on the configured broker; with none, tasks run in-process (the embedded default).

    A task is acknowledged only when it has finished (acks_late): when its worker dies the
    message stays unacknowledged in Redis and is handed to another worker once the visibility
    timeout has passed; when only the pool process dies, it is requeued at once
    (reject_on_worker_lost). Tasks are idempotent, so running one again is safe.
    """
    app = Celery("tractcast", include=["services.retrainer.tasks"])
    visibility = max(1, settings.visibility_timeout)
    app.conf.update(
        broker_url=settings.broker_url or "memory://",
        result_backend=settings.broker_url,
        task_always_eager=settings.broker_url is None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        task_routes={RETRAIN_TASK: {"queue": "train"}},
        task_track_started=True,
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # look for abandoned messages at least as often as they become visible again
            "unacked_restore_interval": min(10, max(1, visibility // 2)),
            "unacked_restore_throttle": 1,
        },
    )
    return app


def retrain_task_id(trigger: str, key: str | None = None) -> str:
    """A task id for a retrain: the same trigger and key give the same id, so sending the
    same request twice (a scheduler restarted, a client retrying) runs one retrain.

    `key` names what the run is for, e.g. the data version or the scheduled fire time; without
    one every call gets a new id.
    """
    if key is None:
        return str(uuid.uuid4())
    safe = re.sub(r"[^A-Za-z0-9._:@+-]", "_", f"{trigger}-{key}")[:180]
    return f"retrain-{safe}"


celery = make_celery(Settings.from_env())
