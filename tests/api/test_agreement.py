"""Agreement computed by the server: hand-computed small cases, DICES's published alpha, the endpoint."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from casework.db.engine import Database
from casework.db.models import Control, Evaluation, Evaluator, Review
from casework.ids import new_id
from casework.services import agreement_days
from casework.services.agreement import Rating, inter_rater, judge_vs_human
from casework.services.agreement_reports import REFRESH_SECONDS
from casework.services.agreement_stats import (
    _alpha_of,
    _cohen_kappa,
    _coincidences,
    _distinct_rows,
    _fleiss,
    _fleiss_batched,
    count_rows,
    krippendorff_alpha,
)
from tests.api.test_agreement_reports import at_window_start
from tests.api.test_calibration import decision, overlapped_project
from tests.support import POLICY_EVALUATOR, POLICY_OPTIONS, Clock, Tenant, enqueue, make_project

DICES = Path(__file__).resolve().parents[3] / "shared" / "data" / "dices" / "dices_350_crowdsourced.json"


def test_hand_computed_two_raters() -> None:
    # a: x x y y ; b: x y y y -> observed 3/4; expected (2/4*1/4 + 2/4*3/4) = 0.5 -> kappa 0.5.
    ratings = [
        Rating(str(i), reviewer, label)
        for i, (first, second) in enumerate([("x", "x"), ("x", "y"), ("y", "y"), ("y", "y")])
        for reviewer, label in (("a", first), ("b", second))
    ]
    result = inter_rater(ratings)
    assert result["items"] == 4
    assert result["percent_agreement"]["value"] == 0.75
    (pair,) = result["pairs"]
    assert pair["reviewers"] == ["a", "b"] and pair["agreement"] == 0.75
    assert pair["cohen_kappa"]["value"] == pytest.approx(0.5)
    # Fleiss for two raters: P = 0.75, p_x = 3/8, p_y = 5/8, Pe = 34/64 -> (0.75 - 0.53125) / 0.46875.
    assert result["fleiss_kappa"]["value"] == pytest.approx(0.4667, abs=1e-4)
    # Krippendorff nominal, 8 values (3 x, 5 y), one disagreeing unit: 1 - (n - 1) * 2 / (2 * 3 * 5) = 1 - 14/30.
    assert result["krippendorff_alpha"]["value"] == pytest.approx(0.5333, abs=1e-4)
    low, high = result["krippendorff_alpha"]["interval"]
    assert low <= result["krippendorff_alpha"]["value"] <= high
    assert inter_rater(ratings)["krippendorff_alpha"] == result["krippendorff_alpha"]  # fixed seed


def test_perfect_agreement_and_the_judge_confusion_matrix() -> None:
    ratings = [Rating(str(i), r, label) for i, label in enumerate("xyxy") for r in ("a", "b", "c")]
    result = inter_rater(ratings)
    assert result["krippendorff_alpha"]["value"] == 1.0
    assert result["fleiss_kappa"]["value"] == 1.0
    judged = judge_vs_human([("x", "x"), ("x", "y"), ("y", "y"), ("ambiguous", "y")], labels=["x", "y"])
    assert judged["accuracy"] == 0.5
    assert judged["confusion"]["x"] == {"x": 1, "y": 1, "ambiguous": 0}
    assert judged["confusion"]["ambiguous"]["y"] == 1


def test_dices_nominal_alpha_matches_the_published_figure() -> None:
    """DICES 350: 123 raters per conversation; "Yes" is unsafe, "No" safe, "Unsure" a category of its own."""
    instances = json.loads(DICES.read_text())["instances"]
    ratings = [
        Rating(str(instance["id"]), f"rater-{position}", label)
        for instance in instances
        for position, label in enumerate(instance["annotations"]["safety"]["individual_human_scores"])
    ]
    assert {r.classification for r in ratings} == {"Yes", "No", "Unsure"}
    result = inter_rater(ratings, per_pair=False)  # rater ids were lost in conversion: no pairs
    assert result["items"] == 350
    assert result["krippendorff_alpha"]["value"] == pytest.approx(0.16, abs=0.01)
    low, high = result["krippendorff_alpha"]["interval"]
    assert low < 0.16 < high


@pytest.mark.storage
def test_the_agreement_endpoint_on_overlapped_reviews(tenant: Tenant, admin: httpx.Client) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    votes = [("compliant", "compliant"), ("non_compliant", "non_compliant"), ("compliant", "non_compliant")]
    with tenant.client("reviewer") as reviewer:
        for i, (first, second) in enumerate(votes):
            review = enqueue(admin, project_id, span_id=f"g{i}")
            for name, choice in (("ana", first), ("ben", second)):
                reviewer.post(
                    f"/api/v1/hitl/reviews/{review['id']}/feedback", json=decision(name, choice)
                ).raise_for_status()
    report = admin.get(
        f"/api/v1/projects/{project_id}/agreement", params={"evaluator_type": "policy-adherence"}
    )
    assert report.status_code == 200, report.text
    body = report.json()
    inter = body["inter_reviewer"]
    assert inter["items"] == 3 and inter["ratings"] == 6
    assert inter["percent_agreement"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    (pair,) = inter["pairs"]
    assert pair["reviewers"] == ["ana", "ben"]
    assert pair["cohen_kappa"]["items"] == 3
    by_name = {r["reviewer"]: r for r in body["reviewers"]}
    assert by_name["ana"]["decisions"] == 3
    assert by_name["ana"]["decided_reviews"] == 2  # the third waits for a lead
    assert by_name["ana"]["agreement_with_final"] == 1.0
    assert by_name["ana"]["median_seconds_to_decide"] >= 0
    empty = admin.get(
        f"/api/v1/projects/{project_id}/agreement", params={"from": "2100-01-01T00:00:00Z"}
    ).json()
    assert empty["inter_reviewer"]["items"] == 0
    assert empty["inter_reviewer"]["krippendorff_alpha"]["value"] is None
    with tenant.client("viewer") as viewer:
        assert viewer.get(f"/api/v1/projects/{project_id}/agreement").status_code == 200
    assert admin.get("/api/v1/projects/prj_nope/agreement").status_code == 404


def test_ordinal_alpha_by_hand() -> None:
    """low < medium < high; units (low, low), (low, medium), (high, high), (medium, medium).

    Coincidences: o(low, low) = 2, o(low, medium) = o(medium, low) = 1, o(medium, medium) = 2, o(high, high) = 2;
    n_low = 3, n_medium = 3, n_high = 2, n = 8. Ordinal distances ((sum of n_g from c to k) - (n_c + n_k) / 2)^2:
    d(low, medium) = (6 - 3)^2 = 9, d(low, high) = (8 - 2.5)^2 = 30.25, d(medium, high) = (5 - 2.5)^2 = 6.25.
    D_o = 2 * 9 / 8 = 2.25; D_e = 2 * (9 * 9 + 6 * 30.25 + 6 * 6.25) / (8 * 7) = 600 / 56;
    alpha = 1 - 2.25 * 56 / 600 = 0.79. Nominal: 1 - (2 / 8) / (42 / 56) = 2/3.
    """
    units = [("low", "low"), ("low", "medium"), ("high", "high"), ("medium", "medium")]
    ratings = [
        Rating(str(i), reviewer, label)
        for i, pair in enumerate(units)
        for reviewer, label in zip(("a", "b"), pair, strict=True)
    ]
    scale = ["low", "medium", "high"]
    ordinal = inter_rater(ratings, categories=scale, level="ordinal")["krippendorff_alpha"]
    assert ordinal["level"] == "ordinal"
    assert ordinal["value"] == pytest.approx(0.79, abs=1e-4)
    assert ordinal["interval"] is not None and ordinal["interval"][0] <= 0.79 <= ordinal["interval"][1]
    nominal = inter_rater(ratings, categories=scale)["krippendorff_alpha"]
    assert nominal["level"] == "nominal" and nominal["value"] == pytest.approx(2 / 3, abs=1e-4)
    # The order is the scale: listing it otherwise (medium at the top) makes low-vs-medium a larger disagreement.
    shuffled = inter_rater(ratings, categories=["low", "high", "medium"], level="ordinal")
    assert shuffled["krippendorff_alpha"]["value"] < 0.79


def test_the_vectorised_bootstrap_computes_what_the_libraries_compute() -> None:
    """Resampled with every item once, the batched formulas give the libraries' values (DICES, 3 categories)."""
    instances = json.loads(DICES.read_text())["instances"]
    ratings = [
        Rating(str(instance["id"]), f"rater-{position}", label)
        for instance in instances
        for position, label in enumerate(instance["annotations"]["safety"]["individual_human_scores"])
    ]
    counts = count_rows(ratings, ["No", "Unsure", "Yes"])
    patterns, frequencies = np.unique(counts, axis=0, return_counts=True)
    once = frequencies.astype(float)
    for level in ("nominal", "ordinal"):
        batched = _alpha_of(np.tensordot(once, _coincidences(patterns), axes=(0, 0)), level)  # type: ignore[arg-type]
        assert float(batched) == pytest.approx(krippendorff_alpha(counts, level), abs=1e-9)  # type: ignore[arg-type]
    assert float(_fleiss_batched(patterns, once)) == pytest.approx(_fleiss(counts), abs=1e-9)


def test_cohen_kappa_from_counts_is_scikit_learns_to_the_last_bit() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = random.Random(3)
    for size in (2, 5, 40, 300, 5000):
        labels = ["a", "b", "c", "ambiguous"][: rng.randint(2, 4)]
        pairs = [(rng.choice(labels), rng.choice(labels[:-1])) for _ in range(size)]
        judged, human = zip(*pairs, strict=True)
        if len(set(judged) | set(human)) < 2:
            continue
        names = sorted(set(judged) | set(human))
        confusion = np.array([[pairs.count((j, h)) for h in names] for j in names], dtype=np.float64)
        assert _cohen_kappa(confusion) == float(cohen_kappa_score(judged, human, labels=names))
        assert judge_vs_human(pairs)["cohen_kappa"] == round(float(cohen_kappa_score(judged, human)), 4)


def test_distinct_rows_are_numpys() -> None:
    rng = np.random.default_rng(5)
    # Rows of 2 and 3 counts (up to a crowd of 123), and 40 (too many to read as one number: numpy's own way).
    for rows, k, most in ((1, 2, 3), (1000, 2, 3), (5000, 3, 123), (300, 40, 60)):
        counts = rng.integers(0, most + 1, size=(rows, k)).astype(float)
        patterns, frequencies = _distinct_rows(counts)
        expected, times = np.unique(counts, axis=0, return_counts=True)
        assert np.array_equal(patterns, expected) and np.array_equal(frequencies, times)


def _two_decisions(
    tenant: Tenant, admin: httpx.Client, project_id: str, votes: list[tuple[str, str]], **fields: Any
) -> None:
    with tenant.client("reviewer") as reviewer:
        for i, (first, second) in enumerate(votes):
            review = enqueue(admin, project_id, span_id=f"o{i}-{uuid.uuid4().hex[:6]}", **fields)
            for name, choice in (("ana", first), ("ben", second)):
                reviewer.post(
                    f"/api/v1/hitl/reviews/{review['id']}/feedback", json=decision(name, choice)
                ).raise_for_status()


SEVERITY = {
    **POLICY_EVALUATOR,
    "name": "severity",
    "options": ["low", "medium", "high"],
    "reviewers_required": 2,
}


@pytest.mark.storage
def test_an_evaluator_with_ordered_options_gets_ordinal_alpha(
    tenant: Tenant, admin: httpx.Client, clock: Clock, settled: Callable[[], None]
) -> None:
    project_id = make_project(admin)
    created = admin.post("/api/v1/evaluators", json={**SEVERITY, "project_id": project_id, "ordered": True})
    assert created.status_code in (200, 201), created.text
    assert created.json()["ordered"] is True
    votes = [("low", "low"), ("low", "medium"), ("high", "high"), ("medium", "medium")]
    _two_decisions(tenant, admin, project_id, votes, evaluator_type="severity", options=SEVERITY["options"])
    report = admin.get(
        f"/api/v1/projects/{project_id}/agreement", params={"evaluator_type": "severity"}
    ).json()
    inter = report["inter_reviewer"]
    assert inter["level"] == "ordinal" and inter["categories"] == ["low", "medium", "high"]
    assert inter["krippendorff_alpha"]["level"] == "ordinal"
    assert inter["krippendorff_alpha"]["value"] == pytest.approx(0.79, abs=1e-4)
    # Cohen's kappa of the pair, counted by the database: p_o = 3/4, p_e = (2 + 2 + 1) / 16 -> 0.6364.
    (pair,) = inter["pairs"]
    assert pair["reviewers"] == ["ana", "ben"] and pair["agreement"] == 0.75
    assert pair["cohen_kappa"]["value"] == pytest.approx(0.6364, abs=1e-4)
    # Declaring the options unordered is a new version, and the same decisions are then nominal.
    at_window_start(clock)
    settled()  # the refresh the decisions queued for the last window is due now: done before the change
    changed = admin.patch(f"/api/v1/evaluators/{created.json()['id']}", json={"ordered": False})
    assert changed.status_code == 200 and changed.json()["ordered"] is False
    assert changed.json()["version"] == created.json()["version"] + 1
    # The stored report says it is stale until the background refresh (at the debounce window's end).
    stale = admin.get(
        f"/api/v1/projects/{project_id}/agreement", params={"evaluator_type": "severity"}
    ).json()
    assert stale["stale"] is True and stale["inter_reviewer"]["level"] == "ordinal"
    settled()  # the refresh is queued for the window's end
    clock.advance(seconds=REFRESH_SECONDS + 1)
    settled()
    report = admin.get(
        f"/api/v1/projects/{project_id}/agreement", params={"evaluator_type": "severity"}
    ).json()
    assert report["stale"] is False
    assert report["inter_reviewer"]["krippendorff_alpha"]["level"] == "nominal"
    assert report["inter_reviewer"]["krippendorff_alpha"]["value"] == pytest.approx(2 / 3, abs=1e-4)


def _judged_rows(
    database: Database, project_id: str, week: datetime, rows: list[tuple[str, str | None, str]]
) -> None:
    """Evaluations of policy-adherence that queued a review a person resolved: (first verdict, verdict after
    re-evaluation with memory or None, the person's decision)."""
    with database.transaction() as session:
        evaluator = (
            session.execute(
                select(Evaluator).where(
                    Evaluator.project_id == project_id, Evaluator.name == "policy-adherence"
                )
            )
            .scalars()
            .first()
        )
        assert evaluator is not None
        for i, (first, with_memory, human) in enumerate(rows):
            review_id, evaluation_id = new_id("rev"), new_id("evn")
            at = week + timedelta(hours=i)
            session.add(
                Review(
                    id=review_id,
                    project_id=project_id,
                    evaluator_type="policy-adherence",
                    query="q",
                    response="r",
                    options=POLICY_OPTIONS,
                    classification=with_memory or first,
                    status="resolved",
                    created_at=at,
                    created_by="test",
                    resolved_at=at,
                    resolved_by="human",
                    resolution_classification=human,
                )
            )
            session.add(
                Evaluation(
                    id=evaluation_id,
                    project_id=project_id,
                    evaluator_id=evaluator.id,
                    evaluator_type="policy-adherence",
                    evaluator_version=evaluator.version,
                    query="q",
                    response="r",
                    status="completed",
                    classification=with_memory or first,
                    reevaluated=with_memory is not None,
                    initial_classification=first if with_memory is not None else None,
                    review_id=review_id,
                    created_at=at,
                )
            )
        session.add(
            Control(
                id=new_id("ctl"), project_id=project_id, evaluator_type="policy-adherence", classification="compliant",
                reasoning="r", reviewer="ana", created_at=week, created_by="test", updated_at=week,
            )
        )  # fmt: skip
        session.flush()
        # The rows went in around the services, which mark their days for agreement's day tallies.
        agreement_days.mark_all(session, project_id)


@pytest.mark.storage
def test_the_agreement_trend_over_weeks(tenant: Tenant, admin: httpx.Client, database: Database) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    c, n = "compliant", "non_compliant"
    first_week = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)  # a Monday
    # Week one: the judge is right on its first try once in four, memory fixes one more.
    _judged_rows(database, project_id, first_week, [(c, n, n), (n, None, n), (c, c, n), (n, c, c)])
    # Week two: right three times in four at first, four in four with memory.
    _judged_rows(
        database,
        project_id,
        first_week + timedelta(days=7),
        [(c, None, c), (n, n, n), (c, None, c), (c, n, n)],
    )
    _two_decisions(tenant, admin, project_id, [(c, c), (n, n), (c, n)])
    trend = admin.get(f"/api/v1/projects/{project_id}/agreement/trend")
    assert trend.status_code == 200, trend.text
    body = trend.json()
    assert body["bucket"] == "week" and body["level"] == "nominal"
    (inter,) = body["inter_reviewer"]  # the overlapped reviews were all made this week
    assert inter["items"] == 3 and inter["krippendorff_alpha"]["items"] == 3
    assert inter["krippendorff_alpha"]["value"] is not None
    (series,) = body["judge_vs_human"]
    assert series["evaluator_type"] == "policy-adherence"
    one, two = series["points"]
    assert one["start"] == "2026-11-02" and two["start"] == "2026-11-09"
    assert one["items"] == 4 and one["controls"] == 1 and two["controls"] == 2
    assert one["first"]["accuracy"] == 0.25 and one["with_memory"]["accuracy"] == pytest.approx(
        2 / 3, abs=1e-4
    )
    assert one["with_memory"]["cohen_kappa"]["items"] == 3
    assert two["first"]["accuracy"] == 0.75 and two["with_memory"]["accuracy"] == 1.0
    assert two["first"]["cohen_kappa"]["value"] == pytest.approx(0.5, abs=1e-4)
    assert body["judge_vs_human_all"] == series["points"]
    # The report has the same comparison per version, first verdict and with memory.
    (version,) = admin.get(f"/api/v1/projects/{project_id}/agreement").json()["judge_vs_human"]
    assert version["items"] == 8 and version["accuracy"] == 0.5
    assert version["with_memory"]["items"] == 5 and version["with_memory"]["accuracy"] == 0.8
    by_day = admin.get(f"/api/v1/projects/{project_id}/agreement/trend", params={"bucket": "day"}).json()
    assert [p["start"] for p in by_day["judge_vs_human_all"]] == ["2026-11-02", "2026-11-09"]
    assert (
        admin.get(f"/api/v1/projects/{project_id}/agreement/trend", params={"bucket": "year"}).status_code
        == 422
    )
    empty = admin.get(
        f"/api/v1/projects/{project_id}/agreement/trend", params={"from": "2100-01-01T00:00:00Z"}
    )
    assert empty.json()["inter_reviewer"] == [] and empty.json()["judge_vs_human_all"] == []


@pytest.mark.storage
def test_the_dices_example_loads_a_crowd_through_the_api(tenant: Tenant, base_url: str) -> None:
    """examples/dices_calibration.py on the first 4 conversations: 123 decisions each through bulk feedback."""
    example = Path(__file__).resolve().parents[2] / "examples" / "dices_calibration.py"
    env = {
        **os.environ,
        "CASEWORK_API_KEY": tenant.keys["admin"],
        "CASEWORK_BASE_URL": base_url,
        "DICES_ITEMS": "4",
    }
    run = subprocess.run([sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert '"items": 4' in run.stdout and '"ratings": 492' in run.stdout
    assert "krippendorff_alpha: " in run.stdout and "/overview" in run.stdout
    with tenant.client("admin") as admin:
        (project,) = [
            p for p in admin.get("/api/v1/projects").json()["projects"] if p["name"] == "dices-calibration"
        ]
        full = admin.get(f"/api/v1/projects/{project['id']}/agreement").json()
        assert len(full["inter_reviewer"]["pairs"]) == 123 * 122 // 2
        assert (
            admin.get(f"/api/v1/projects/{project['id']}/agreement", params={"pairs": "false"}).json()[
                "inter_reviewer"
            ]["pairs"]
            == []
        )
