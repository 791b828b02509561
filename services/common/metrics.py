"""Prometheus metrics every service shares: requests and latency by endpoint and status.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set per service by the runner and in compose) makes
the request metrics a sum over the workers; the state gauges (what serves, how many promotions)
come from collectors that read the current state at scrape time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

UNMATCHED = "<unmatched>"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("service", "endpoint", "method", "status")


class RequestMetrics:
    """Request counter and latency histogram of one app, in a registry of its own.

    A registry per app lets every app (and test) start at zero in one process.
    """

    def __init__(self, service: str, collectors: Iterable[Collector] = ()) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tractcast_http_requests",
            "HTTP requests answered, by service, endpoint, method and status.",
            LABELS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "tractcast_http_request_duration_seconds",
            "Seconds to answer a request, by service, endpoint, method and status.",
            LABELS,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.state = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self.state.register(collector)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        key = (endpoint, method, status)
        children = self._children.get(key)
        if children is None:  # label lookups are the costly part: once per combination
            labels = (self.service, endpoint, method, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> Response:
        """The exposition text: request metrics (all workers) and this service's state."""
        text = generate_latest(self._request_registry()) + generate_latest(self.state)
        return Response(text, mimetype=CONTENT_TYPE_LATEST)

    def _request_registry(self) -> CollectorRegistry:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry


class StateCollector:
    """A collector whose metrics come from a function called at every scrape.

    A failing read (database down) drops those metrics from that scrape instead of failing it:
    the request metrics still reach Prometheus, and `tractcast_state_up` says what happened.
    """

    def __init__(self, name: str, read: Callable[[], Iterable[Metric]]) -> None:
        self.name = name
        self._read = read

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "tractcast_state_up", "1 when the state metrics could be read.", labels=["source"]
        )
        try:
            metrics = list(self._read())
        except Exception:
            up.add_metric([self.name], 0)
            yield up
            return
        up.add_metric([self.name], 1)
        yield up
        yield from metrics

    def describe(self) -> list[Metric]:
        return []


def gauge(name: str, documentation: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


# Lifecycle event kinds (tractcast.registry.metadata.EVENT_KINDS) and the counter of each.
EVENT_COUNTERS = {
    "registered": ("tractcast_training_runs", "Training runs that registered a candidate."),
    "promoted": ("tractcast_promotions", "Promotions of a version to champion."),
    "rolled_back": ("tractcast_rollbacks", "Rollbacks to an earlier version."),
    "rejected": ("tractcast_rejected_candidates", "Candidates the promotion gate refused."),
    "data_held": ("tractcast_data_held_releases", "Data releases held for an admin to accept."),
    "data_accepted": ("tractcast_data_accepted_releases", "Held data releases an admin accepted."),
    "data_refused": ("tractcast_data_refused_releases", "Data releases ingestion refused."),
    "feed_stale": ("tractcast_feed_stale", "Releases whose last days repeat the day before."),
}


def registry_state(
    registries: Sequence[tuple[str | None, Callable[[], Any]]], live_days: int = 14
) -> StateCollector:
    """The registry's state: lifecycle events so far, the champion, its quarantined rows, and
    its live MAE relative to the seasonal naive per horizon, over the last `live_days` days.

    Counted from the metadata store's events (append-only, so these are true counters, the
    same in every worker). `registries` holds each layer's name and a function returning its
    tractcast.registry.Registry; with a layers file (names, not None) every sample is labelled
    `layer`, one sample per layer in each metric.
    """

    def read() -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for name, registry in registries:
            for metric in layer_state(registry(), live_days):
                into = merged.setdefault(
                    metric.name, Metric(metric.name, metric.documentation, metric.type)
                )
                labels = {} if name is None else {"layer": name}
                into.samples.extend(
                    sample._replace(labels={**sample.labels, **labels}) for sample in metric.samples
                )
        yield from merged.values()

    return StateCollector("registry", read)


def layer_state(opened: Any, live_days: int) -> Iterator[Metric]:
    """One layer's registry metrics (registry_state), unlabelled."""
    kinds = [event.kind for event in opened.list_events(limit=None)]
    for kind, (name, documentation) in EVENT_COUNTERS.items():
        yield counter(name, documentation, kinds.count(kind))
    version = opened.serving_version()
    if version is None:
        return
    described = opened.get_version(version)
    yield gauge(
        "tractcast_champion_info",
        "The champion version and the data version it was trained on (value always 1).",
        1,
        version=version,
        data_version=described.data_version,
    )
    ingest = described.manifest.get("ingest") or {}
    quarantined = ingest.get("rows_quarantined")
    if isinstance(quarantined, int):
        yield gauge(
            "tractcast_quarantined_rows",
            "Rows the champion's data release quarantined at ingestion.",
            quarantined,
            version=version,
            data_version=described.data_version,
        )
    yield from live_skill_gauges(opened.store, version, live_days)


def live_skill_gauges(store: Any, version: str, days: int) -> Iterator[Metric]:
    """The champion's live MAE over the seasonal naive's, same days, overall and by horizon."""
    from tractcast.errors import TractcastError
    from tractcast.monitoring.live_error import served_live_skill

    try:
        skill = served_live_skill(store, version, days)
    except (TractcastError, OSError, ValueError):  # no readable bundle: nothing to report
        return
    if skill.relative_mae is not None:
        yield gauge(
            "tractcast_live_relative_mae",
            "Champion's live MAE / the weekly seasonal naive's on the same days (< 1: better).",
            skill.relative_mae,
            version=version,
        )
    family = GaugeMetricFamily(
        "tractcast_live_relative_mae_by_horizon",
        "Champion's live MAE / the seasonal naive's at one horizon, same days.",
        labels=["version", "horizon"],
    )
    for entry in skill.per_horizon:
        if entry["relative_mae"] is not None:
            family.add_metric([version, str(entry["horizon"])], entry["relative_mae"])
    yield family
