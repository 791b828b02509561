"""Prometheus metrics of the API: requests by endpoint and status, and what is being served."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from tractcast.serving.bundle import Bundle

UNMATCHED = "<unmatched>"


class ApiMetrics:
    """Request metrics in a registry of their own, so every app (and test) starts at zero.

    Under gunicorn with PROMETHEUS_MULTIPROC_DIR set, request metrics are summed over workers;
    the serving gauges are read from the bundle at scrape time.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tractcast_api_requests",
            "HTTP requests answered, by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tractcast_api_request_duration_seconds",
            "Time to answer a request, by endpoint, method and status.",
            ["endpoint", "method", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

    def init_app(self, app: Flask) -> None:
        app.before_request(_start_timer)
        app.after_request(self._observe)

    def render(self, bundle: Bundle | None) -> Response:
        """The exposition text: request metrics plus the serving bundle's gauges."""
        text = generate_latest(self._request_registry()) + generate_latest(_serving(bundle))
        return Response(text, mimetype=CONTENT_TYPE_LATEST)

    def _observe(self, response: Response) -> Response:
        started = g.pop("metrics_started", None)
        rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        labels = (rule, request.method, str(response.status_code))
        self.requests.labels(*labels).inc()
        if started is not None:
            self.latency.labels(*labels).observe(time.perf_counter() - started)
        return response

    def _request_registry(self) -> CollectorRegistry:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _serving(bundle: Bundle | None) -> CollectorRegistry:
    """Gauges describing the bundle this process serves, built fresh for each scrape."""
    registry = CollectorRegistry()
    loaded = Gauge(
        "tractcast_api_bundle_loaded", "1 when a serving bundle is loaded.", registry=registry
    )
    loaded.set(0 if bundle is None else 1)
    if bundle is None:
        return registry
    Gauge(
        "tractcast_api_serving_info",
        "The model version and data version being served (value always 1).",
        ["model_version", "data_version", "bundle_id"],
        registry=registry,
    ).labels(bundle.model_version, bundle.data_version, bundle.bundle_id).set(1)
    age = _age_seconds(bundle.created_at)
    if age is not None:
        Gauge(
            "tractcast_api_bundle_age_seconds",
            "Seconds since the serving bundle was created.",
            registry=registry,
        ).set(age)
    return registry


def _age_seconds(created_at: str) -> float | None:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - created).total_seconds())
