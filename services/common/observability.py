"""What every service tells operators: request ids, one JSON log line per request, /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from flask import Flask, Response, current_app, g, request
from prometheus_client.registry import Collector

from services.common.metrics import UNMATCHED, RequestMetrics
from tractcast.logs import (
    REQUEST_ID_HEADER,
    bind_request_id,
    request_id_from,
    set_service,
    unbind_request_id,
)

access_log = logging.getLogger("tractcast.access")
METRICS_KEY = "tractcast_metrics"


def init_observability(app: Flask, service: str, collectors: Iterable[Collector] = ()) -> None:
    """Request ids, request logging and Prometheus metrics (GET /metrics) for `service`."""
    set_service(service)
    metrics = RequestMetrics(service, collectors)
    app.extensions[METRICS_KEY] = metrics
    RequestObserver(service, metrics).init_app(app)
    app.add_url_rule("/metrics", "metrics", _render_metrics, methods=["GET"])


class RequestObserver:
    """One hook before and one after each request (they run on every request, so few and lean).

    Before: take the request id nginx set (or make one) and bind it for every log line.
    After: echo the id, count and time the request by endpoint and status, log one line.
    """

    def __init__(self, service: str, metrics: RequestMetrics) -> None:
        self.service = service
        self.metrics = metrics

    def init_app(self, app: Flask) -> None:
        app.before_request(self.before)
        app.after_request(self.after)
        app.teardown_request(self.teardown)

    def before(self) -> None:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.observed = (time.perf_counter(), request_id, bind_request_id(request_id))

    def after(self, response: Response) -> Response:
        observed = g.get("observed")
        if observed is None:  # a before_request hook registered earlier failed
            return response
        started, request_id, _ = observed
        seconds = time.perf_counter() - started
        response.headers[REQUEST_ID_HEADER] = request_id
        req = request._get_current_object()  # type: ignore[attr-defined]
        rule = req.url_rule.rule if req.url_rule is not None else UNMATCHED
        status = response.status_code
        self.metrics.observe(rule, req.method, status, seconds)
        if access_log.isEnabledFor(logging.INFO):
            fields = {
                "method": req.method,
                "path": req.path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            }
            access_log.info(
                "%s %s %s",
                req.method,
                req.path,
                status,
                extra={"service": self.service, "request_id": request_id, "fields": fields},
            )
        return response

    def teardown(self, _exc: BaseException | None) -> None:
        observed = g.pop("observed", None)
        if observed is not None:
            unbind_request_id(observed[2])


def _render_metrics() -> Response:
    metrics: RequestMetrics = current_app.extensions[METRICS_KEY]
    return metrics.render()
