"""Work a worker does once, before it takes requests: load what the first request would.

gunicorn calls `warm_up` from post_worker_init (services/common/gunicorn_conf.py), so a worker
that joins under load does not answer its first requests while reading a tract layer or a
bundle. A failed warm-up is logged and left to the first request, which tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)
WARM_UP_KEY = "tractcast_warm_up"


def on_warm_up(app: Flask, step: Callable[[], object]) -> None:
    app.extensions.setdefault(WARM_UP_KEY, []).append(step)


def warm_up(app: Flask) -> None:
    for step in app.extensions.get(WARM_UP_KEY, []):
        try:
            step()
        except Exception:
            log.exception("warm-up step failed; the first request that needs it will retry")
