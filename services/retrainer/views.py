"""Retrainer endpoints: trigger a retrain, health."""

from __future__ import annotations

from flask import Blueprint

from services.common.http import require_admin, settings_of
from services.retrainer.jobs import enqueue_retrain

bp = Blueprint("retrainer", __name__)


@bp.post("/v1/admin/retrain")
def retrain():  # type: ignore[no-untyped-def]
    require_admin()
    return enqueue_retrain(settings_of(), trigger="admin"), 202


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    return {"status": "ready", "broker": "celery" if settings_of().broker_url else "in-process"}
