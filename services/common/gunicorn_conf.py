"""gunicorn settings shared by every tractcast web service.

    gunicorn -c python:services.common.gunicorn_conf --bind ... --workers N services.api.wsgi:app

Command-line flags win over these. Logs leave as JSON lines on stderr (the apps log each request
with its request id, so gunicorn's access log stays off); with PROMETHEUS_MULTIPROC_DIR set, the
directory is emptied when gunicorn starts and a dead worker's gauges are dropped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tractcast.logs import logging_config

# Threads let a worker answer other requests while one waits on another service (api -> geo)
# and keep connections from nginx alive between requests; sync workers close every one.
worker_class = "gthread"
threads = 4
keepalive = 75  # longer than nginx's upstream keepalive_timeout (60 s), so nginx closes first
logconfig_dict = logging_config()
accesslog = None
# The largest request line and header gunicorn takes; nginx refuses anything over 4k first.
limit_request_line = 8190
limit_request_field_size = 8190
# gunicorn >= 24 opens a control socket at one path per user: several services on one host
# would take it from each other. Nothing here uses it (older versions ignore the setting).
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Start the multiprocess metrics directory empty: files of an earlier run would add up."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def post_worker_init(worker: Any) -> None:
    """Load what the app's first request would (tract layer, bundle) before taking requests."""
    from flask import Flask

    from services.common.warmup import warm_up

    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):
        warm_up(app)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
