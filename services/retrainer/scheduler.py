"""The one scheduler process: on its cron schedule it only enqueues a retrain."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from tractcast.settings import Settings

log = logging.getLogger("tractcast.scheduler")


def build_scheduler(
    settings: Settings, enqueue: Callable[[Settings, str], dict[str, Any]]
) -> BlockingScheduler:
    """A scheduler whose single job enqueues a retrain on `settings.schedule` (cron, UTC)."""
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        enqueue,
        CronTrigger.from_crontab(settings.schedule, timezone="UTC"),
        args=(settings, "schedule"),
        id="retrain",
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )
    return scheduler


def main() -> None:
    from services.retrainer.jobs import enqueue_retrain

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    scheduler = build_scheduler(settings, enqueue_retrain)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    log.info("scheduling retrains on %r", settings.schedule)
    scheduler.start()


if __name__ == "__main__":
    main()
