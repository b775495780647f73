"""The Grafana dashboard and the Prometheus alert rules under deploy/: they parse, and every metric their
queries name is one /metrics exports; and the loop's metrics, their labels (bounded: never a review or trace id)
and values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from casework.api.metrics import LOOP_METRICS
from tests.support import POLICY_EVALUATOR, enqueue, make_project

pytestmark = pytest.mark.storage

METRIC = re.compile(r"\bcasework_[a-z0-9_]+")


def dashboard_queries(repo_root: Path) -> list[str]:
    dashboard = json.loads((repo_root / "deploy/grafana/casework.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return queries


def alert_queries(repo_root: Path) -> list[str]:
    rules = yaml.safe_load((repo_root / "deploy/prometheus/alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def scrape(anonymous: httpx.Client) -> dict[str, list[Any]]:
    response = anonymous.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


@pytest.fixture
def busy_project(admin: httpx.Client) -> str:
    """A project with one review decided, one pending, and a queue threshold crossed."""
    project_id = make_project(admin, "metrics-demo")
    admin.put(
        f"/api/v1/projects/{project_id}/sla",
        json={"target_hours": 4, "queue_thresholds": {"pending_count": 5}},
    ).raise_for_status()
    decided = enqueue(admin, project_id, span_id="one")
    admin.post(
        f"/api/v1/hitl/reviews/{decided['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "a@b.example"},
    ).raise_for_status()
    enqueue(admin, project_id, span_id="two")
    return project_id


def test_every_query_names_a_metric_that_metrics_exports(
    repo_root: Path, anonymous: httpx.Client, busy_project: str
) -> None:
    exported = set(scrape(anonymous))
    assert set(LOOP_METRICS) <= exported
    queries = dashboard_queries(repo_root) + alert_queries(repo_root)
    assert len(queries) >= 10
    named = {name for query in queries for name in METRIC.findall(query)}
    assert named and sorted(named - exported) == []


def test_the_dashboard_covers_queue_health_sla_ambiguity_memory_and_agreement(repo_root: Path) -> None:
    dashboard = json.loads((repo_root / "deploy/grafana/casework.json").read_text())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows[:5] == ["Queue health", "SLA", "Ambiguity", "Memory", "Agreement"]
    agreement = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "casework_agreement_pairs" in target["expr"]
    ]
    assert agreement, "no panel charts agreement"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_loop_metrics_and_their_labels(anonymous: httpx.Client, busy_project: str) -> None:
    samples = scrape(anonymous)
    for name in LOOP_METRICS:
        for sample in samples[name]:
            assert not {"review_id", "trace_id", "span_id", "id"} & set(sample.labels)
    ours = [s for s in samples["casework_reviews_pending"] if s.labels["project_id"] == busy_project]
    assert [(s.labels["project"], s.labels["evaluator_type"], s.labels["age"], s.value) for s in ours] == [
        ("metrics-demo", "policy-adherence", "0-1h", 1.0)
    ]
    decisions = {
        s.labels["resolved_by"]: s.value
        for s in samples["casework_review_decisions_total"]
        if s.labels["project_id"] == busy_project
    }
    assert decisions == {"human": 1.0, "memory": 0.0}
    (count,) = [
        s.value
        for s in samples["casework_time_to_decision_seconds_count"]
        if s.labels["project_id"] == busy_project
    ]
    assert count == 1.0
    buckets = [
        s
        for s in samples["casework_time_to_decision_seconds_bucket"]
        if s.labels["project_id"] == busy_project
    ]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[0].value == 1.0  # decided within the first minute
    (overdue,) = [
        s.value for s in samples["casework_reviews_overdue"] if s.labels["project_id"] == busy_project
    ]
    assert overdue == 0.0
    crossed = [
        s for s in samples["casework_queue_threshold_crossed"] if s.labels["project_id"] == busy_project
    ]
    assert [(s.labels["metric"], s.value) for s in crossed] == [("pending_count", 0.0)]


def test_agreement_is_exported_per_project_evaluator_and_pair(
    admin: httpx.Client, anonymous: httpx.Client
) -> None:
    """Judge against person on every decision by people; reviewer against reviewer on overlapped reviews (two
    reviewers agreeing make one pair that agrees), counted from the kept roll-ups."""
    project_id = make_project(admin, "agreement-demo")
    created = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    admin.patch(f"/api/v1/evaluators/{created['id']}", json={"reviewers_required": 2}).raise_for_status()
    review = enqueue(admin, project_id, classification="non_compliant")
    for reviewer in ("ana@bank.example", "ben@bank.example"):
        admin.post(
            f"/api/v1/hitl/reviews/{review['id']}/feedback",
            json={"classification": "compliant", "reasoning": "Fine.", "reviewer": reviewer},
        ).raise_for_status()
    samples = scrape(anonymous)

    def pairs(name: str) -> dict[str, float]:
        return {
            s.labels["pair"]: s.value
            for s in samples[name]
            if s.labels["project_id"] == project_id and s.labels["evaluator_type"] == POLICY_EVALUATOR["name"]
        }

    assert pairs("casework_agreement_pairs_total") == {"judge_human": 1.0, "reviewer_reviewer": 1.0}
    assert pairs("casework_agreement_pairs_agreed_total") == {"judge_human": 0.0, "reviewer_reviewer": 1.0}
