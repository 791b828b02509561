"""Retrains of two tract layers at once, on two real Celery workers over the real Redis.

One scenario, watched from start to end (the tests below read what it saw):
  1. three workers (concurrency 1 each) wait on a Redis database claimed for the run;
  2. a retrain of each layer is queued: two workers take them and train side by side, each
     holding its layer's lock;
  3. while both train, an admin triggers the first layer again: the idle worker takes it and
     skips it, the layer's retrain already running;
  4. both retrains end, each with its own versions and champion in its layer's store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.faults.processes import Server, celery_worker, close_celery, machine_redis, wait_until

from services.retrainer.celery_app import make_celery
from services.retrainer.jobs import enqueue_retrain
from services.retrainer.tasks import recent_skips, running_retrain
from tractcast.data.demo import write_demo_data
from tractcast.registry.store import LocalModelStore
from tractcast.settings import Settings
from tractcast.tract_layers import tract_layers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LAYERS = ("north", "south")  # each its own synthetic series and tracts, 16 tracts x 150 days
FIT_LINE = "training the LSTM on"  # what a worker logs as each fit begins (models/lstm.py)


@dataclass
class Scenario:
    settings: Settings
    task_ids: dict[str, str] = field(default_factory=dict)  # layer -> its queued retrain
    holders: dict[str, dict[str, Any]] = field(default_factory=dict)  # locks, seen both held
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)  # Celery's started record
    skipped: dict[str, Any] = field(default_factory=dict)  # the second trigger's answer
    held_after_skip: dict[str, str | None] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended: dict[str, datetime] = field(default_factory=dict)  # layer -> its task's date_done
    fits: dict[str, list[datetime]] = field(default_factory=dict)  # LSTM fits begun, its log's
    logged_end: dict[str, datetime] = field(default_factory=dict)  # its log's "succeeded"
    skips: list[dict[str, Any]] = field(default_factory=list)


def layers_file(base: Path) -> Path:
    """Two small layers, each with its own data (a different seed: other tracts and series)."""
    for seed, name in enumerate(LAYERS, start=1):
        write_demo_data(base / name, seed=seed, n_days=150)
    entries = [
        f'[[layers]]\nname = "{name}"\ntracts = "{name}/tracts.geojson"\n'
        f'data_source = "{name}/cases.csv"\n'
        for name in LAYERS
    ]
    path = base / "layers.toml"
    path.write_text("\n".join(entries))
    return path


def logged_at(log: Path, text: str) -> list[datetime]:
    """When a worker logged the lines holding `text`, by the worker's own clock."""
    lines = log.read_text(errors="replace").splitlines()
    return [
        datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
        for line in lines
        if line.startswith("[") and text in line
    ]


def fits_and_end(log: Path, task_id: str) -> tuple[list[datetime], datetime]:
    """When a worker's LSTM fits began, and when it logged the task's end (just after storing
    its result, so it is waited for)."""
    ended = f"{task_id}] succeeded"
    wait_until(lambda: bool(logged_at(log, ended)), 10, f"{log.name} never logged {ended}")
    (end,) = logged_at(log, ended)
    return logged_at(log, FIT_LINE), end


def holders_of(settings: Settings) -> dict[str, dict[str, Any] | None]:
    return {layer: running_retrain(settings, layer) for layer in LAYERS}


@pytest.fixture(scope="module")
def scenario(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    base = tmp_path_factory.mktemp("layers")
    settings = Settings(
        store=base / "store",
        layers=str(layers_file(base)),
        run_dir=base / "run",
        broker_url=broker_url,
        visibility_timeout=600,  # no redelivery while a retrain runs
        epochs=1,
        backtest_origins=1,
        workers=1,
    )
    seen = Scenario(settings)
    client_app = make_celery(settings)
    broker: redis.Redis = machine_redis(broker_url)
    workers: dict[str, Server] = {}
    try:
        for name in ("a", "b", "c"):
            workers[name] = celery_worker(settings, name, base / f"worker-{name}.log")
        for layer in LAYERS:
            seen.task_ids[layer] = enqueue_retrain(settings, "test", layer=layer)["task_id"]

        def both_held() -> bool:
            holders = holders_of(settings)
            if None in holders.values():
                return False
            seen.holders = {layer: dict(holder or {}) for layer, holder in holders.items()}
            return True

        wait_until(both_held, 120, "the two layers never trained at once", every=0.05)
        for layer, task_id in seen.task_ids.items():
            started = client_app.AsyncResult(task_id)
            if started.state == "STARTED":  # Celery's record: the worker and its pool process
                seen.workers[layer] = dict(started.info)

        again = enqueue_retrain(settings, "admin", layer=LAYERS[0])
        seen.skipped = client_app.AsyncResult(again["task_id"]).get(timeout=60)
        seen.held_after_skip = {
            layer: (holder or {}).get("task_id") for layer, holder in holders_of(settings).items()
        }
        for layer, task_id in seen.task_ids.items():
            result = client_app.AsyncResult(task_id)
            seen.answers[layer] = result.get(timeout=300)
            seen.ended[layer] = result.date_done
            worker = workers[seen.workers[layer]["hostname"].split("@")[0]]
            seen.fits[layer], seen.logged_end[layer] = fits_and_end(worker.log, task_id)
        seen.skips = recent_skips(broker)
        yield seen
    finally:
        for server in workers.values():
            server.stop()
        close_celery(client_app)
        broker.close()


def test_two_layers_train_at_the_same_time_on_different_workers(scenario: Scenario) -> None:
    north, south = (scenario.holders[layer] for layer in LAYERS)
    assert [north["task_id"], south["task_id"]] == [scenario.task_ids[layer] for layer in LAYERS]
    assert north["pid"] != south["pid"]
    # Celery's own record of who runs each task agrees: two workers, the lock holders' processes
    assert set(scenario.workers) == set(LAYERS)
    nodes = {layer: record["hostname"] for layer, record in scenario.workers.items()}
    assert nodes[LAYERS[0]] != nodes[LAYERS[1]]
    assert {layer: record["pid"] for layer, record in scenario.workers.items()} == {
        layer: scenario.holders[layer]["pid"] for layer in LAYERS
    }
    # each began before the other ended (start: when it took its lock; end: Celery's date_done)
    began = {layer: datetime.fromisoformat(scenario.holders[layer]["since"]) for layer in LAYERS}
    assert max(began.values()) < min(scenario.ended.values())
    assert all(scenario.answers[layer]["status"] == "done" for layer in LAYERS)


def test_the_two_layers_lstm_fits_overlap_in_the_workers_logs(scenario: Scenario) -> None:
    north, south = LAYERS
    fits, ends = scenario.fits, scenario.logged_end
    assert fits[north] and fits[south]
    # each layer's first fit began while the other layer's retrain had not ended
    assert fits[north][0] < ends[south] and fits[south][0] < ends[north]


def test_a_second_trigger_of_a_training_layer_is_skipped_while_the_other_trains(
    scenario: Scenario,
) -> None:
    layer = LAYERS[0]
    skipped = scenario.skipped
    assert skipped["status"] == "skipped" and skipped["running"] == scenario.task_ids[layer]
    assert "a retrain is already running" in skipped["reason"]
    (recorded,) = scenario.skips
    assert recorded["trigger"] == "admin" and recorded["running"] == scenario.task_ids[layer]
    # skipped while both layers' first retrains still ran (the records keep whole seconds)
    began = [datetime.fromisoformat(scenario.holders[name]["since"]) for name in LAYERS]
    assert max(began) <= datetime.fromisoformat(recorded["at"]) < min(scenario.ended.values())
    assert scenario.held_after_skip == scenario.task_ids


def test_each_layer_registers_its_own_versions_and_champion(scenario: Scenario) -> None:
    data_versions = set()
    for layer in tract_layers(scenario.settings):
        answer = scenario.answers[layer.name]
        store = LocalModelStore(layer.settings.store)
        assert "lstm" in answer["versions"]
        assert {v.version for v in store.list_versions()} == set(answer["versions"].values())
        assert answer["champion"] is not None
        assert store.serving_version() == answer["champion"]
        assert store.current_bundle_id() == answer["bundle_id"]
        data_versions.add(answer["data_version"])
    assert len(data_versions) == len(LAYERS)  # each trained on its own data
