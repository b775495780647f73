"""Prometheus metrics: a registry per app (nothing global), and a pure ASGI middleware to fill it."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.services.queue_metrics import Snapshot

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "casework_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "casework_http_request_duration_seconds",
            "Time from request received to response sent, by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.spans_received = Counter(
            "casework_spans_stored", "New spans stored from OTLP exports.", registry=self.registry
        )
        self.jobs_finished = Counter(
            "casework_jobs_finished",
            "Jobs this process's worker finished, by kind and outcome (done, retry, failed).",
            ["kind", "outcome"],
            registry=self.registry,
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = _route_template(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    # The template (/api/v1/projects/{project_id}), never the raw path: label sets stay bounded.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


# --- the loop's own metrics, read from the database at each scrape (casework.services.queue_metrics) -------------

# Every metric the loop exports, as queries name them (the dashboard test checks queries against this list).
LOOP_METRICS = (
    "casework_reviews_pending",
    "casework_reviews_overdue",
    "casework_reviews_oldest_pending_seconds",
    "casework_queue_threshold_crossed",
    "casework_review_decisions_total",
    "casework_memory_resolutions_total",
    "casework_interactions_evaluated_total",
    "casework_interactions_routed_total",
    "casework_time_to_decision_seconds_bucket",
    "casework_time_to_decision_seconds_sum",
    "casework_time_to_decision_seconds_count",
    "casework_agreement_pairs_total",
    "casework_agreement_pairs_agreed_total",
    "casework_webhook_delivery_failures_total",
)


class LoopCollector(Collector):
    """Prometheus families from one database snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot

        def project(project_id: str) -> list[str]:
            return [project_id, s.projects.get(project_id, "")]

        where = ["project_id", "project"]
        pending = GaugeMetricFamily(
            "casework_reviews_pending",
            "Reviews pending now, by project, evaluator and age (0-1h, 1h-4h, 4h-24h, 1d-3d, 3d+).",
            labels=[*where, "evaluator_type", "age"],
        )
        for (project_id, evaluator, age), n in sorted(s.pending.items()):
            pending.add_metric([*project(project_id), evaluator, age], n)
        yield pending
        overdue = GaugeMetricFamily(
            "casework_reviews_overdue",
            "Reviews waiting for a decision (pending or needs_adjudication) past their SLA due time (clock running).",
            labels=where,
        )
        for project_id in sorted(s.projects):
            overdue.add_metric(project(project_id), s.overdue.get(project_id, 0))
        yield overdue
        oldest = GaugeMetricFamily(
            "casework_reviews_oldest_pending_seconds",
            "How long the oldest pending review has waited.",
            labels=where,
        )
        for project_id, seconds in sorted(s.oldest_pending.items()):
            oldest.add_metric(project(project_id), round(seconds, 3))
        yield oldest
        crossed = GaugeMetricFamily(
            "casework_queue_threshold_crossed",
            "1 while the project's queue threshold is crossed (the SLA sweep's state, with its hysteresis), else 0.",
            labels=[*where, "metric"],
        )
        for (project_id, metric), on in sorted(s.thresholds_crossed.items()):
            crossed.add_metric([*project(project_id), metric], 1.0 if on else 0.0)
        yield crossed
        decisions = CounterMetricFamily(
            "casework_review_decisions",
            "Decisions on reviews, by who made them (human or memory).",
            labels=[*where, "evaluator_type", "resolved_by"],
        )
        memory = CounterMetricFamily(
            "casework_memory_resolutions",
            "Reviews evaluation memory resolved.",
            labels=[*where, "evaluator_type"],
        )
        for (project_id, evaluator, by), n in sorted(s.decisions.items()):
            decisions.add_metric([*project(project_id), evaluator, by], n)
            if by == "memory":
                memory.add_metric([*project(project_id), evaluator], n)
        yield decisions
        yield memory
        evaluated = CounterMetricFamily(
            "casework_interactions_evaluated",
            "Interactions an evaluator judged.",
            labels=[*where, "evaluator_type"],
        )
        routed = CounterMetricFamily(
            "casework_interactions_routed",
            "Of those, the ones sent to people (ambiguous or low confidence): the ambiguity rate's numerator.",
            labels=[*where, "evaluator_type"],
        )
        for (project_id, evaluator), n in sorted(s.evaluated.items()):
            evaluated.add_metric([*project(project_id), evaluator], n)
            routed.add_metric([*project(project_id), evaluator], s.routed.get((project_id, evaluator), 0))
        yield evaluated
        yield routed
        times = HistogramMetricFamily(
            "casework_time_to_decision_seconds",
            "Time from queued to decided, by project and evaluator.",
            labels=[*where, "evaluator_type"],
        )
        for (project_id, evaluator), histogram in sorted(s.decision_times.items()):
            times.add_metric(
                [*project(project_id), evaluator], histogram.cumulative(), sum_value=histogram.total_seconds
            )
        yield times
        pairs = CounterMetricFamily(
            "casework_agreement_pairs",
            "Pairs of decisions compared: judge_human, the judge's verdict against each decision by people; "
            "reviewer_reviewer, each pair of reviewers' independent decisions on an overlapped review.",
            labels=[*where, "evaluator_type", "pair"],
        )
        agreed = CounterMetricFamily(
            "casework_agreement_pairs_agreed",
            "Of those, the pairs that agreed: agreement is their ratio.",
            labels=[*where, "evaluator_type", "pair"],
        )
        for (project_id, evaluator, pair), (compared, same) in sorted(s.agreement.items()):
            pairs.add_metric([*project(project_id), evaluator, pair], compared)
            agreed.add_metric([*project(project_id), evaluator, pair], same)
        yield pairs
        yield agreed
        failures = CounterMetricFamily(
            "casework_webhook_delivery_failures",
            "Webhook delivery attempts that failed (no answer, or not 2xx).",
        )
        failures.add_metric([], s.webhook_failures)
        yield failures


def loop_metrics(snapshot: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LoopCollector(snapshot))
    return generate_latest(registry)
