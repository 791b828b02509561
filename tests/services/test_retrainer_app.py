"""The retrainer: admin trigger, queueing on a real Redis broker, the schedules, one leader."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from tests.faults.processes import machine_redis

from services.retrainer.app import create_app
from services.retrainer.jobs import enqueue_retrain
from services.retrainer.scheduler import (
    FileLeaderLock,
    RedisLeaderLock,
    build_scheduler,
    fire_if_leader,
    leader_lock_for,
    scheduled_retrain,
)
from tractcast.settings import Settings


@pytest.fixture
def broker(broker_url: str) -> Iterator[redis.Redis]:
    client = machine_redis(broker_url)
    yield client
    client.flushdb()
    client.close()


def test_retrain_needs_the_admin_token(tmp_path, broker_url):
    app = create_app(Settings(store=tmp_path, admin_token="secret", broker_url=broker_url))
    client = app.test_client()
    assert client.post("/v1/admin/retrain").status_code == 401
    wrong = client.post("/v1/admin/retrain", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 403
    assert wrong.get_json()["error"] == "forbidden"


def test_retrain_is_off_without_a_configured_token(tmp_path):
    client = create_app(Settings(store=tmp_path)).test_client()
    response = client.post("/v1/admin/retrain", headers={"Authorization": "Bearer x"})
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"


def test_admin_retrain_queues_a_task_on_the_train_queue_of_redis(tmp_path, broker, broker_url):
    app = create_app(Settings(store=tmp_path, admin_token="secret", broker_url=broker_url))
    response = app.test_client().post(
        "/v1/admin/retrain", headers={"Authorization": "Bearer secret"}
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and body["trigger"] == "admin"
    messages = [json.loads(m) for m in broker.lrange("train", 0, -1)]
    assert [m["headers"]["id"] for m in messages] == [body["task_id"]]
    assert messages[0]["headers"]["task"] == "tractcast.retrain"


def test_retrain_answers_503_json_when_the_broker_is_down(tmp_path):
    from tests.faults.processes import free_port

    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(Settings(store=tmp_path, admin_token="secret", broker_url=closed))
    response = app.test_client().post(
        "/v1/admin/retrain", headers={"Authorization": "Bearer secret"}
    )
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
    assert "task queue" in response.get_json()["message"]


def test_enqueue_records_what_triggered_the_run(tmp_path, broker, broker_url):
    queued = enqueue_retrain(Settings(store=tmp_path, broker_url=broker_url), "schedule")
    message = json.loads(broker.lrange("train", 0, -1)[0])
    assert message["headers"]["argsrepr"] == "('schedule',)"
    assert uuid.UUID(queued["task_id"])


def test_scheduler_fires_monthly_by_default(tmp_path):
    scheduler = build_scheduler(Settings(), enqueue, FileLeaderLock(tmp_path / "lock"))
    job = scheduler.get_job("retrain")
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    first = job.trigger.get_next_fire_time(None, now)
    second = job.trigger.get_next_fire_time(first, first)
    assert (first.day, first.hour, first.month) == (1, 3, 12)
    assert (second.day, second.month) == (1, 1)
    assert job.func is scheduled_retrain


def test_data_is_checked_daily_by_default(tmp_path):
    scheduler = build_scheduler(Settings(), enqueue, FileLeaderLock(tmp_path / "lock"))
    job = scheduler.get_job("check")
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    first = job.trigger.get_next_fire_time(None, now)
    second = job.trigger.get_next_fire_time(first, first)
    assert (first.day, first.hour) == (23, 4) and second - first == timedelta(days=1)


def test_the_schedule_runs_the_checks_as_scheduled_and_the_daily_job_not(tmp_path):
    calls: list[tuple[str, bool]] = []

    def check(settings, now, enqueue, scheduled=False):
        calls.append((now.tzname(), scheduled))
        return {}

    lock = FileLeaderLock(tmp_path / "lock")
    scheduler = build_scheduler(Settings(), enqueue, lock, check)
    for job_id in ("retrain", "check"):
        job = scheduler.get_job(job_id)
        assert job.func(*job.args) is True
    lock.release()
    assert calls == [("UTC", True), ("UTC", False)]


def enqueue(settings: Settings, trigger: str) -> dict:
    return {"status": "queued", "trigger": trigger}


@pytest.fixture
def lock_key(broker: redis.Redis) -> Iterator[str]:
    key = f"tractcast:test:leader:{uuid.uuid4().hex}"
    yield key
    broker.delete(key)


def test_of_two_schedulers_on_one_redis_only_one_fires(tmp_path, lock_key, broker_url):
    fired: list[str] = []

    def check_as(name: str):
        def check(settings, now, enqueue, scheduled=False):
            fired.append(name)
            return {}

        return check

    replicas = {
        name: build_scheduler(
            Settings(store=tmp_path, broker_url=broker_url),
            enqueue,
            RedisLeaderLock(broker_url, key=lock_key, ttl=1.0),
            check_as(name),
            blocking=False,
        )
        for name in ("a", "b")
    }
    for scheduler in replicas.values():
        scheduler.start()
    try:
        time.sleep(0.3)  # both have tried to take the lock; one holds it and renews it
        jobs = [scheduler.get_job("retrain") for scheduler in replicas.values()]
        threads = [threading.Thread(target=job.func, args=job.args) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert len(fired) == 1  # the other one waited a lock lifetime, then gave up

        # the holder dies without letting go: after the lock lapses the other one fires
        holder = fired[0]
        replicas[holder].shutdown(wait=False)
        other = next(name for name in replicas if name != holder)
        job = replicas[other].get_job("check")
        started = time.monotonic()
        assert job.func(*job.args) is True
        assert fired == [holder, other]
        assert time.monotonic() - started < 2.5
    finally:
        for scheduler in replicas.values():
            if scheduler.running:
                scheduler.shutdown(wait=False)


def test_a_replica_that_cannot_reach_redis_fires_nothing(tmp_path):
    fired: list[bool] = []
    lock = RedisLeaderLock("redis://127.0.0.1:1/0", ttl=0.2)
    assert fire_if_leader(lock, lambda: fired.append(True), poll=0.05) is False
    assert fired == []


def test_without_a_broker_replicas_on_one_machine_share_a_file_lock(tmp_path):
    settings = Settings(store=tmp_path)
    one, two = leader_lock_for(settings), leader_lock_for(settings)
    assert isinstance(one, FileLeaderLock)
    assert one.acquire() and one.acquire()
    assert not two.acquire()
    one.release()
    assert two.acquire()
    two.release()


def test_health_answers(tmp_path):
    client = create_app(Settings(store=tmp_path)).test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/nope").get_json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("weekdays", "fires_on"),
    [
        ("1", ["Mon"]),  # APScheduler alone reads 1 as Tuesday
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("5-7", ["Sun", "Fri", "Sat"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("0,3", ["Sun", "Wed"]),
        ("mon", ["Mon"]),
    ],
)
def test_a_schedule_reads_weekday_numbers_as_cron_does(tmp_path, weekdays, fires_on):
    settings = Settings(store=tmp_path, schedule=f"0 3 * * {weekdays}")
    scheduler = build_scheduler(settings, lambda *a, **k: {}, FileLeaderLock(tmp_path / "lock"))
    trigger = scheduler.get_job("retrain").trigger
    fired, when = [], datetime(2026, 11, 22, 12, tzinfo=UTC)  # a Sunday, after 03:00
    for _ in range(len(fires_on)):
        when = trigger.get_next_fire_time(None, when + timedelta(minutes=1))
        fired.append(when.strftime("%a"))
    assert fired == [f for f in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] if f in fires_on]


def layered_settings(tmp_path, **more) -> Settings:
    (tmp_path / "layers.toml").write_text(
        '[[layers]]\nname = "municipalities"\nschedule = "0 3 * * mon"\n'
        '[[layers]]\nname = "provinces"\n'
    )
    return Settings(store=tmp_path / "store", layers=str(tmp_path / "layers.toml"), **more)


def test_each_layer_is_scheduled_on_its_own_cron_and_enqueued_under_its_name(tmp_path):
    started: list[tuple[str, str | None]] = []

    def enqueue_layer(settings, trigger, layer=None):
        started.append((trigger, layer))
        return {"status": "started"}

    def check(settings, now, enqueue, scheduled=False):
        return enqueue(settings, "schedule")

    lock = FileLeaderLock(tmp_path / "lock")
    scheduler = build_scheduler(layered_settings(tmp_path), enqueue_layer, lock, check)
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)  # a Sunday: the next Monday is the 23rd
    fine = scheduler.get_job("retrain:municipalities").trigger.get_next_fire_time(None, now)
    coarse = scheduler.get_job("retrain:provinces").trigger.get_next_fire_time(None, now)
    assert (fine.day, fine.hour) == (23, 3)  # its own weekly schedule
    assert (coarse.day, coarse.month) == (1, 12)  # the deployment's monthly default
    for job_id in ("retrain:municipalities", "retrain:provinces"):
        job = scheduler.get_job(job_id)
        job.func(*job.args)
    lock.release()
    assert started == [("schedule", "municipalities"), ("schedule", "provinces")]


def test_admin_retrain_of_a_named_layer_queues_a_task_naming_it(tmp_path, broker, broker_url):
    settings = layered_settings(tmp_path, admin_token="secret", broker_url=broker_url)
    client = create_app(settings).test_client()
    auth = {"Authorization": "Bearer secret"}
    response = client.post("/v1/admin/retrain?layer=provinces", headers=auth)
    assert response.status_code == 202 and response.get_json()["layer"] == "provinces"
    message = json.loads(broker.lrange("train", 0, -1)[0])
    assert message["headers"]["kwargsrepr"] == "{'layer': 'provinces'}"
    assert client.post("/v1/admin/retrain?layer=regions", headers=auth).status_code == 404
    every = client.post("/v1/admin/retrain", headers=auth).get_json()
    assert sorted(every["layers"]) == ["municipalities", "provinces"]
