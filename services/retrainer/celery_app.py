"""The Celery app: a `train` queue (the GPU host in production) and a default queue."""

from __future__ import annotations

from celery import Celery

from tractcast.settings import Settings

RETRAIN_TASK = "tractcast.retrain"


def make_celery(settings: Settings) -> Celery:
    """Celery on the configured broker; with none, tasks run in-process (the embedded default)."""
    app = Celery("tractcast", include=["services.retrainer.tasks"])
    app.conf.update(
        broker_url=settings.broker_url or "memory://",
        result_backend=settings.broker_url,
        task_always_eager=settings.broker_url is None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        task_routes={RETRAIN_TASK: {"queue": "train"}},
        broker_connection_retry_on_startup=True,
    )
    return app


celery = make_celery(Settings.from_env())
