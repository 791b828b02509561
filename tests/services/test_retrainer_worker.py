"""Real Celery workers on the real Redis: a worker killed mid-training, a second trigger.

One scenario, watched from start to end (the tests below read what it saw):
  1. worker A takes a retrain and is killed -9 while it writes its first version;
  2. worker B starts; Redis hands it the unacknowledged task once the visibility timeout has
     passed, and it runs it to the end;
  3. while B trains, an admin triggers another retrain: it is skipped and recorded;
  4. the first task's id is sent again after it finished: its answer comes back, no training.
All along a watcher reads the store every few milliseconds, as the registry and the API would.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.faults.processes import Server, celery_worker, close_celery, machine_redis, wait_until

from services.retrainer.celery_app import RETRAIN_TASK, make_celery
from services.retrainer.tasks import DONE_PREFIX, LOCK_KEY, recent_skips
from tractcast.data.demo import ensure_demo_data
from tractcast.registry.integrity import verify_version_files
from tractcast.registry.store import TMP_PREFIX, LocalModelStore
from tractcast.serving.bundle import load_bundle
from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIRST = "retrain-test-killed-worker"
SECOND = "retrain-admin-while-running"


class StoreWatcher(threading.Thread):
    """Reads the store like a reader would and notes anything half-written it ever sees."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.looks = 0
        self.currents: set[str] = set()

    def run(self) -> None:
        store = LocalModelStore(self.root)
        while not self.stop.wait(0.02):
            self.looks += 1
            try:
                self.look(store)
            except Exception as exc:  # anything a reader trips over is a finding
                self.problems.append(f"{type(exc).__name__}: {exc}")

    def look(self, store: LocalModelStore) -> None:
        for version in store.list_versions():
            assert version.path is not None
            names = {path.name for path in version.path.iterdir()}
            if not {"manifest.json", "metrics.json", "checksums.sha256"} <= names:
                self.problems.append(f"{version.version} visible with only {sorted(names)}")
            verify_version_files(version)
        try:
            target = os.readlink(self.root / "current")
        except FileNotFoundError:
            return
        load_bundle(self.root / target)  # raises Unavailable for anything incomplete
        self.currents.add(Path(target).name)


@dataclass
class Scenario:
    settings: Settings
    store: LocalModelStore
    watcher: StoreWatcher
    killed_while: str = ""  # what the store showed when A was killed
    visible_at_kill: list[str] = field(default_factory=list)
    tmp_at_kill: list[str] = field(default_factory=list)
    redelivered_to_other_pid: bool = False
    first: dict[str, Any] = field(default_factory=dict)
    second: dict[str, Any] = field(default_factory=dict)
    versions_after_first: list[str] = field(default_factory=list)
    resent: dict[str, Any] = field(default_factory=dict)
    versions_after_resend: list[str] = field(default_factory=list)
    skips: list[dict[str, Any]] = field(default_factory=list)


def lock_holder(client: redis.Redis) -> dict[str, Any] | None:
    value = client.get(LOCK_KEY)
    return None if value is None else json.loads(value)


@pytest.fixture(scope="module")
def broker(broker_url: str) -> Iterator[redis.Redis]:
    client = machine_redis(broker_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def scenario(
    broker: redis.Redis, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    base = tmp_path_factory.mktemp("worker")
    settings = Settings(
        store=base / "store",
        demo_dir=base / "demo",
        run_dir=base / "run",
        broker_url=broker_url,
        visibility_timeout=10,
        epochs=1,
        backtest_origins=1,
    )
    ensure_demo_data(settings)
    store = LocalModelStore(settings.store)
    watcher = StoreWatcher(settings.store)
    watcher.start()
    seen = Scenario(settings, store, watcher)
    client_app = make_celery(settings)
    workers: list[Server] = []
    try:
        a = celery_worker(settings, "a", base / "worker-a.log")
        workers.append(a)
        client_app.send_task(RETRAIN_TASK, args=("test",), task_id=FIRST)
        wait_until(
            lambda: (lock_holder(broker) or {}).get("task_id") == FIRST, 60, "A never started"
        )
        a_pid = lock_holder(broker)["pid"]  # type: ignore[index]
        versions = settings.store / "versions"
        # kill at the first sign of a version being written: a temp dir, or the first rename
        wait_until(
            lambda: versions.is_dir() and bool(os.listdir(versions)),
            240,
            "A wrote no version",
            every=0.005,
        )
        a.kill(signal.SIGKILL)
        seen.tmp_at_kill = [p.name for p in versions.iterdir() if p.name.startswith(TMP_PREFIX)]
        seen.visible_at_kill = [v.version for v in store.list_versions()]
        seen.killed_while = "writing" if seen.tmp_at_kill else "just after a rename"

        b = celery_worker(settings, "b", base / "worker-b.log", concurrency=2)
        workers.append(b)
        wait_until(
            lambda: (lock_holder(broker) or {"pid": a_pid}).get("pid") != a_pid,
            120,
            "the killed task was never redelivered",
        )
        seen.redelivered_to_other_pid = lock_holder(broker)["task_id"] == FIRST  # type: ignore[index]
        second = client_app.send_task(RETRAIN_TASK, args=("admin",), task_id=SECOND)
        seen.second = second.get(timeout=120)
        seen.first = client_app.AsyncResult(FIRST).get(timeout=400)
        seen.versions_after_first = [v.version for v in store.list_versions()]

        client_app.send_task(RETRAIN_TASK, args=("test",), task_id=FIRST)
        wait_until(lambda: "already finished" in b.tail(20000), 60, "resent task not answered")
        seen.resent = json.loads(broker.get(DONE_PREFIX + FIRST))  # type: ignore[arg-type]
        seen.versions_after_resend = [v.version for v in store.list_versions()]
        seen.skips = recent_skips(broker)
        yield seen
    finally:
        watcher.stop.set()
        watcher.join(timeout=5)
        for worker in workers:
            worker.stop()
        close_celery(client_app)


def test_a_worker_killed_mid_training_never_leaves_a_half_written_version(
    scenario: Scenario,
) -> None:
    assert scenario.watcher.looks > 100
    assert scenario.watcher.problems == []
    # what the kill cut short stays a hidden temp dir; what was renamed is whole
    for version in scenario.visible_at_kill:
        verify_version_files(scenario.store.get_version(version))


def test_the_killed_task_runs_again_on_another_worker_and_completes(scenario: Scenario) -> None:
    assert scenario.redelivered_to_other_pid
    first = scenario.first
    assert first["status"] == "done"
    assert first["bundle_id"] == scenario.store.current_bundle_id()
    families = {"lstm", "persistence", "seasonal_naive", "moving_average", "ensemble"}
    assert set(first["versions"]) == families
    # one full retrain after the kill: five new versions beside what A had finished
    assert len(scenario.versions_after_first) == len(scenario.visible_at_kill) + len(families)
    assert scenario.watcher.currents == {first["bundle_id"]}


def test_a_second_trigger_while_a_retrain_runs_is_skipped_and_recorded(
    scenario: Scenario,
) -> None:
    second = scenario.second
    assert second["status"] == "skipped" and second["running"] == FIRST
    assert "a retrain is already running" in second["reason"]
    recorded = [s for s in scenario.skips if s["task_id"] == SECOND]
    assert len(recorded) == 1 and recorded[0]["trigger"] == "admin"


def test_a_finished_task_sent_again_answers_without_training_again(scenario: Scenario) -> None:
    assert scenario.resent == scenario.first
    assert scenario.versions_after_resend == scenario.versions_after_first
