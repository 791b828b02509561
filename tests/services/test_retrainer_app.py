"""The retrainer: admin trigger, queueing on a real Redis broker, the cron schedule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import redis

from services.retrainer.app import create_app
from services.retrainer.jobs import enqueue_retrain
from services.retrainer.scheduler import build_scheduler
from tractcast.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def broker() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (CI starts it)")
    client.delete("train", "default")
    yield client
    client.delete("train", "default")


def test_retrain_needs_the_admin_token(tmp_path):
    app = create_app(Settings(store=tmp_path, admin_token="secret", broker_url=REDIS_URL))
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


def test_admin_retrain_queues_a_task_on_the_train_queue_of_redis(tmp_path, broker):
    app = create_app(Settings(store=tmp_path, admin_token="secret", broker_url=REDIS_URL))
    response = app.test_client().post(
        "/v1/admin/retrain", headers={"Authorization": "Bearer secret"}
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and body["trigger"] == "admin"
    messages = [json.loads(m) for m in broker.lrange("train", 0, -1)]
    assert [m["headers"]["id"] for m in messages] == [body["task_id"]]
    assert messages[0]["headers"]["task"] == "tractcast.retrain"


def test_enqueue_records_what_triggered_the_run(tmp_path, broker):
    queued = enqueue_retrain(Settings(store=tmp_path, broker_url=REDIS_URL), "schedule")
    message = json.loads(broker.lrange("train", 0, -1)[0])
    assert message["headers"]["argsrepr"] == "('schedule',)"
    assert uuid.UUID(queued["task_id"])


def test_scheduler_fires_monthly_by_default():
    calls: list[str] = []
    scheduler = build_scheduler(Settings(), lambda settings, trigger: calls.append(trigger))
    job = scheduler.get_job("retrain")
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    first = job.trigger.get_next_fire_time(None, now)
    second = job.trigger.get_next_fire_time(first, first)
    assert (first.day, first.hour, first.month) == (1, 3, 12)
    assert (second.day, second.month) == (1, 1)
    assert job.args[1] == "schedule"


def test_health_answers(tmp_path):
    client = create_app(Settings(store=tmp_path)).test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/nope").get_json()["error"] == "not_found"
