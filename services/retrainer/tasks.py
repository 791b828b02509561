"""Celery tasks: they take plain arguments and call the core."""

from __future__ import annotations

import dataclasses
from typing import Any

from services.retrainer.celery_app import RETRAIN_TASK, celery
from tractcast.errors import Conflict
from tractcast.settings import Settings


@celery.task(name=RETRAIN_TASK)
def retrain_task(trigger: str = "manual") -> dict[str, Any]:
    """Retrain on the newest data; a second run while one is going is skipped, not duplicated."""
    from tractcast.pipeline import retrain

    try:
        outcome = retrain(Settings.from_env(), trigger=trigger)
    except Conflict as exc:
        return {"status": "skipped", "reason": exc.message, "trigger": trigger}
    return {"status": "done", **dataclasses.asdict(outcome)}
