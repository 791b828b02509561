"""Structured logs: one JSON object per line, each carrying the request id it belongs to.

nginx sets X-Request-ID (or keeps a sane one from the caller); every service takes it from
there, puts it on every log line written while answering, and the API's geo client forwards it,
so one id follows a request from nginx through api and geo.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
# The same rule nginx applies before trusting a caller's id (nginx/nginx.conf.template).
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Attributes every LogRecord has; anything else was passed with `extra=` and is logged too.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}

_request_id: ContextVar[str | None] = ContextVar("tractcast_request_id", default=None)
_service = "tractcast"


def set_service(name: str) -> None:
    """The service name put on lines that do not name one (one service per process)."""
    global _service
    _service = name


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is sane, else a new one."""
    if header and _SANE_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being answered in this thread, if any."""
    return _request_id.get()


def bind_request_id(request_id: str | None) -> object:
    """Make `request_id` current; returns a token for `unbind_request_id`."""
    return _request_id.set(request_id)


def unbind_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]


class JsonFormatter(logging.Formatter):
    """time, level, service, request_id, logger and message, plus any `extra=` fields.

    `extra={"fields": {...}}` adds the dict's items as they are (the request log's shape).
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": getattr(record, "service", None) or _service,
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)  # the request log's fields, in one dict
        if isinstance(fields, dict):
            line.update(fields)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line and key != "fields":
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig that sends every logger's lines to stderr as JSON."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # gunicorn's own lines (start, worker boot and exit) in the same shape.
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            # Requests are logged by the apps themselves, with their request id.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
