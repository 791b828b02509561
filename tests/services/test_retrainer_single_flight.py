"""One retrain at a time, on the real Redis: the lock, the skip record, deterministic ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.faults.processes import machine_redis

from services.retrainer.celery_app import retrain_task_id
from services.retrainer.tasks import (
    DONE_PREFIX,
    RetrainLock,
    lock_ttl,
    recent_skips,
    run_retrain,
    running_retrain,
)
from tractcast.registry.store import RegistryReader
from tractcast.settings import Settings
from tractcast.workflows.retrain import retrain_lock


@pytest.fixture
def broker(broker_url: str) -> Iterator[redis.Redis]:
    client = machine_redis(broker_url)
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path: Path, broker_url: str) -> Settings:
    return Settings(store=tmp_path / "store", broker_url=broker_url, visibility_timeout=10)


def hold(broker: redis.Redis, settings: Settings, task_id: str) -> RetrainLock:
    lock = RetrainLock(broker, lock_ttl(settings))
    assert lock.acquire(task_id, "schedule") is None
    return lock


def test_a_trigger_while_another_retrain_runs_is_skipped_and_recorded(
    broker: redis.Redis, settings: Settings
) -> None:
    hold(broker, settings, "retrain-running")
    answer = run_retrain(settings, "retrain-second", "admin")
    assert answer["status"] == "skipped" and answer["running"] == "retrain-running"
    assert (
        "a retrain is already running (task retrain-running, trigger schedule" in answer["reason"]
    )
    (recorded,) = recent_skips(broker)
    assert (recorded["task_id"], recorded["trigger"]) == ("retrain-second", "admin")
    assert running_retrain(settings)["task_id"] == "retrain-running"  # type: ignore[index]


def test_a_retrain_from_the_command_line_makes_a_queued_one_skip(
    broker: redis.Redis, settings: Settings
) -> None:
    with retrain_lock(RegistryReader(settings.store)):  # what `tractcast train` holds while it runs
        answer = run_retrain(settings, "retrain-queued", "schedule")
    assert answer["status"] == "skipped" and answer["reason"] == "a retrain is already running"
    assert recent_skips(broker)[0]["task_id"] == "retrain-queued"
    assert running_retrain(settings) is None  # the Redis lock was given back
    assert broker.get(DONE_PREFIX + "retrain-queued") is None  # skipped is not done


def test_the_same_task_delivered_again_while_it_runs_waits_instead_of_training_twice(
    broker: redis.Redis, settings: Settings
) -> None:
    lock = hold(broker, settings, "retrain-long")
    with lock.renewed():  # the first delivery is alive and keeps its lock
        answer = run_retrain(settings, "retrain-long", "schedule")
    assert answer["status"] == "wait" and answer["retry_in"] >= lock.ttl
    assert recent_skips(broker) == []


def test_a_finished_task_answers_from_its_record(broker: redis.Redis, settings: Settings) -> None:
    done = {"status": "done", "promoted": "v0003-lstm", "versions": {"lstm": "v0003-lstm"}}
    broker.set(DONE_PREFIX + "retrain-finished", json.dumps(done))
    hold(broker, settings, "retrain-other")  # even while another runs
    assert run_retrain(settings, "retrain-finished", "schedule") == done


def test_the_same_trigger_and_key_name_the_same_task() -> None:
    fire = "2026-12-01T03:00:00+00:00"
    assert retrain_task_id("schedule", fire) == retrain_task_id("schedule", fire)
    assert retrain_task_id("schedule", fire) != retrain_task_id("new_data", fire)
    assert retrain_task_id("admin") != retrain_task_id("admin")
    assert " " not in retrain_task_id("data", "a b/c")


def test_retrains_of_different_layers_run_side_by_side_and_one_layer_runs_once(
    broker: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.retrainer.tasks as tasks

    monkeypatch.setattr(tasks, "_retrain", lambda settings, trigger: {"status": "done"})
    held = RetrainLock(broker, lock_ttl(settings), tasks.lock_key("municipalities"))
    assert held.acquire("retrain-municipalities", "schedule") is None
    other = run_retrain(settings, "retrain-provinces", "schedule", layer="provinces")
    assert other["status"] == "done"  # another layer's lock does not hold it back
    same = run_retrain(settings, "retrain-municipalities-2", "admin", layer="municipalities")
    assert same["status"] == "skipped" and same["running"] == "retrain-municipalities"
    assert running_retrain(settings, "municipalities")["task_id"] == "retrain-municipalities"  # type: ignore[index]
    assert running_retrain(settings) is None  # the unnamed layer's lock is its own
