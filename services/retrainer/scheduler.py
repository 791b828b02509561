"""The scheduler: on its cron schedules it checks and enqueues; only the lock holder fires.

Several retrainer replicas may run this process; they share a leader lock (redis-py's Lock, a
key taken with SET NX PX and renewed, or a file lock without a broker). A replica without the
lock fires nothing: when a job is due it waits up to one lock lifetime (the holder may have
just died), then skips. The lock lapses when its holder stops renewing it, so another replica
takes over.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from tractcast.locks import FileLock
from tractcast.registry.store import RegistryReader
from tractcast.settings import Settings
from tractcast.tract_layers import tract_layers

log = logging.getLogger("tractcast.scheduler")

LOCK_KEY = "tractcast:scheduler:leader"
LOCK_TTL = 30.0  # seconds a holder keeps the lock without renewing it

# cron numbers the weekdays from Sunday = 0 (7 is Sunday too); APScheduler's from_crontab reads
# them from Monday = 0, so "0 3 * * 1" would fire on Tuesdays. Numbers are named before it reads.
CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")

Enqueue = Callable[..., dict[str, Any]]  # (settings, trigger[, layer=]) -> how it started
Check = Callable[..., dict[str, Any]]


class LeaderLock(Protocol):
    ttl: float

    def acquire(self) -> bool:
        """Take the lock, or keep it when held; True while this process holds it."""

    def release(self) -> None:
        """Give the lock up (only if held)."""


class RedisLeaderLock:
    """A Redis key holding the leader's token (redis-py's Lock), with a lifetime the leader
    keeps renewing."""

    def __init__(self, url: str, key: str = LOCK_KEY, ttl: float = LOCK_TTL) -> None:
        import redis

        self.ttl = ttl
        self.key = key
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        # thread_local=False: APScheduler renews it from whichever of its threads runs the job.
        self._lock = client.lock(key, timeout=ttl, thread_local=False)

    def acquire(self) -> bool:
        from redis.exceptions import LockError, RedisError

        try:
            if self._lock.local.token is not None:
                try:
                    return self._lock.reacquire()  # ours still: renew its lifetime
                except LockError:  # it lapsed (another replica may hold it now)
                    pass
            return self._lock.acquire(blocking=False, token=self.token)
        except RedisError as exc:  # cannot prove we hold it: behave as if we do not
            log.warning("leader lock unavailable: %s", exc)
            return False

    def release(self) -> None:
        from redis.exceptions import LockError, RedisError

        try:
            self._lock.release()
        except LockError:  # not held: never taken, lapsed, or another replica's now
            pass
        except RedisError as exc:
            log.warning("leader lock not released (it lapses by itself): %s", exc)


class FileLeaderLock(FileLock):
    """An exclusive flock on a file in the store: replicas on one machine, no broker."""

    def __init__(self, path: Path, ttl: float = LOCK_TTL) -> None:
        super().__init__(path)
        self.ttl = ttl

    def acquire(self, blocking: bool = False) -> bool:
        """Take the lock, or keep it when held; never waits (fire_if_leader polls)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return super().acquire(blocking)


def leader_lock_for(settings: Settings) -> LeaderLock:
    """Redis when the broker is Redis, else a file lock in the store."""
    if settings.broker_url and settings.broker_url.startswith(("redis://", "rediss://")):
        return RedisLeaderLock(settings.broker_url)
    return FileLeaderLock(RegistryReader(settings.store).scheduler_lock_path())


def fire_if_leader(
    lock: LeaderLock, action: Callable[[], Any], *, wait: float | None = None, poll: float = 0.5
) -> bool:
    """Run `action` if this replica holds (or within `wait` seconds takes) the lock."""
    deadline = time.monotonic() + (lock.ttl if wait is None else wait)
    while not lock.acquire():
        if time.monotonic() >= deadline:
            log.info("another replica holds the scheduler lock: not firing")
            return False
        time.sleep(poll)
    action()
    return True


def scheduled_retrain(
    settings: Settings, enqueue: Enqueue, lock: LeaderLock, check: Check | None = None
) -> bool:
    """The cron schedule is due: retrain unless the newest retrain already used this data."""
    check = check or _run_checks
    return fire_if_leader(lock, lambda: check(settings, datetime.now(UTC), enqueue, scheduled=True))


def daily_check(
    settings: Settings, enqueue: Enqueue, lock: LeaderLock, check: Check | None = None
) -> bool:
    """New data, drift, live error, automated rollback (tractcast.workflows.checks)."""
    check = check or _run_checks
    return fire_if_leader(lock, lambda: check(settings, datetime.now(UTC), enqueue))


def cron_trigger(expression: str) -> CronTrigger:
    """A trigger for a five-field crontab line, in UTC, with cron's weekday numbers."""
    fields = expression.split()
    if len(fields) == 5:
        fields[4] = ",".join(_named_weekdays(part) for part in fields[4].split(","))
    return CronTrigger.from_crontab(" ".join(fields), timezone="UTC")


def _named_weekdays(part: str) -> str:
    """One comma-separated part of cron's weekday field with its numbers as day names."""
    days, _, step = part.partition("/")
    if days == "*" and step:
        days = "0-7"
    first, _, last = days.partition("-")
    if not (first.isdigit() and (not last or last.isdigit())):
        return part  # "*", names, or something from_crontab will refuse with its reason
    low, high = int(first), int(last or (7 if step else first))
    if low > 7 or high > 7 or low > high:
        return part
    numbers = range(low, high + 1, int(step) if step.isdigit() and int(step) > 0 else 1)
    return ",".join(dict.fromkeys(CRON_WEEKDAYS[n] for n in numbers))


def build_scheduler(
    settings: Settings,
    enqueue: Enqueue,
    lock: LeaderLock | None = None,
    check: Check | None = None,
    *,
    blocking: bool = True,
) -> BaseScheduler:
    """Jobs: per tract layer its retrain schedule and data check (both cron, UTC), and the
    lock's renewal."""
    lock = lock or leader_lock_for(settings)
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
    )
    common = {"max_instances": 1, "coalesce": True, "replace_existing": True}
    for layer in tract_layers(settings):
        # each layer on its own schedule, its retrains enqueued under its name
        named = settings.layers is not None
        suffix = f":{layer.name}" if named else ""
        layer_enqueue = partial(enqueue, layer=layer.name) if named else enqueue
        scheduler.add_job(
            scheduled_retrain,
            cron_trigger(layer.settings.schedule),
            args=(layer.settings, layer_enqueue, lock, check),
            id="retrain" + suffix,
            **common,
        )
        scheduler.add_job(
            daily_check,
            cron_trigger(layer.settings.data_check),
            args=(layer.settings, layer_enqueue, lock, check),
            id="check" + suffix,
            **common,
        )
    scheduler.add_job(
        lock.acquire,
        IntervalTrigger(seconds=max(lock.ttl / 3, 0.1)),
        id="leader",
        next_run_time=datetime.now(UTC),
        **common,
    )
    return scheduler


def _run_checks(settings: Settings, now: datetime, enqueue: Enqueue, **options: Any) -> Any:
    from tractcast.workflows.checks import run_checks

    report = run_checks(settings, now, enqueue, **options)
    fired = [f["trigger"] for f in report.get("fired", [])]
    log.info("checked data %s: fired %s", report.get("data_version"), fired or "nothing")
    return report


def main() -> None:
    from services.retrainer.jobs import enqueue_retrain

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    lock = leader_lock_for(settings)
    scheduler = build_scheduler(settings, enqueue_retrain, lock)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    log.info("retrains on %r, checks on %r", settings.schedule, settings.data_check)
    try:
        scheduler.start()
    finally:
        lock.release()


if __name__ == "__main__":
    main()
