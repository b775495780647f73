"""Agreement's day tallies: a report added up from them is the report counted from the rows, whatever the dates;
a change marks its day in its own transaction; and a tally counted from data read before a change commits is
never taken as current."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import event, select

from casework.db.engine import Database
from casework.db.models import AgreementDay, Control, Decision, Evaluation, Evaluator, Review
from casework.ids import new_id
from casework.services import agreement, agreement_days
from casework.services.agreement_stats import (
    Rating,
    inter_rater,
    judge_vs_human,
)
from casework.services.agreement_tallies import Tally, count_rows
from casework.services.reviews import MemoryDecision, reopen, settle_by_memory
from tests.api.test_agreement_reports import at_window_start
from tests.api.test_calibration import decision, overlapped_project
from tests.support import Clock, Tenant, enqueue, make_project

pytestmark = pytest.mark.storage

POLICY = ["compliant", "non_compliant"]
SEVERITY = ["low", "medium", "high"]
REVIEWERS = ["ana", "ben", "cy", "di", "ed"]
MONDAY = datetime(2026, 11, 2, tzinfo=timezone.utc)


def _evaluator(project_id: str, name: str, version: int, options: list[str], ordered: bool) -> Evaluator:
    return Evaluator(
        id=new_id("evl"), project_id=project_id, name=name, version=version, kind="llm", options=options,
        ordered=ordered, ambiguity_threshold=0.5, reeval="ambiguous", reviewers_required=3, created_at=MONDAY,
        created_by="test",
    )  # fmt: skip


def seed(database: Database, project_id: str, *, reviews: int = 400, days: int = 9, seed: int = 7) -> None:
    """Rows written around the services, over ``days`` days from a Monday (none on the fifth): overlapped reviews
    of two evaluators (one ordered) with 1 to 3 decisions each, resolved by people, waiting for a lead or pending;
    the judge's verdicts on them (two versions, some re-evaluated), spot checks of its automatic verdicts, and
    controls. Then the days are marked, as the services would have."""
    rng = random.Random(seed)
    with database.transaction() as session:
        versions = [
            _evaluator(project_id, "policy-adherence", 1, POLICY, False),
            _evaluator(project_id, "policy-adherence", 2, POLICY, False),
            _evaluator(project_id, "severity", 1, SEVERITY, True),
        ]
        session.add_all(versions)
        session.flush()
        decisions = []
        for i in range(reviews):
            day = rng.choice([d for d in range(days) if d != 4])
            created = MONDAY + timedelta(
                days=day, seconds=rng.randint(0, 86_399), microseconds=rng.randint(0, 999_999)
            )
            evaluator = rng.choice(versions)
            options = list(evaluator.options)
            truth = rng.choice(options)
            spot_check = rng.random() < 0.1
            people = 1 if spot_check else rng.choice([1, 2, 3, 3])
            votes = [truth if rng.random() < 0.75 else rng.choice(options) for _ in range(people)]
            status = rng.choice(["resolved", "resolved", "resolved", "pending"])
            if status == "resolved" and len(set(votes)) > 1 and rng.random() < 0.5:
                status = "needs_adjudication"
            review_id, evaluation_id = new_id("rev"), new_id("evn")
            first = rng.choice([*options, "ambiguous"])
            reevaluated = rng.random() < 0.4
            verdict = rng.choice(options) if reevaluated else first
            resolved = status == "resolved"
            session.add(
                Review(
                    id=review_id, project_id=project_id, evaluator_type=evaluator.name, query=f"q{i}", response="r",
                    options=options, classification=verdict, status=status, created_at=created, created_by="test",
                    resolved_at=created + timedelta(hours=3) if resolved else None,
                    resolved_by="human" if resolved else None,
                    resolution_classification=Counter(votes).most_common(1)[0][0] if resolved else None,
                    kind="spot_check" if spot_check else "review", subject_id=evaluation_id if spot_check else None,
                    reviewers_required=people, decisions_submitted=people,
                )
            )  # fmt: skip
            session.add(
                Evaluation(
                    id=evaluation_id, project_id=project_id, evaluator_id=evaluator.id,
                    evaluator_type=evaluator.name, evaluator_version=evaluator.version, query=f"q{i}", response="r",
                    status="completed", classification=verdict, reevaluated=reevaluated,
                    initial_classification=first if reevaluated else None,
                    review_id=None if spot_check else review_id, created_at=created,
                )
            )  # fmt: skip
            if people == 1 and resolved and rng.random() < 0.5:
                continue  # one person resolved it alone: no independent decision
            for reviewer, vote in zip(rng.sample(REVIEWERS, people), votes, strict=True):
                decisions.append(
                    Decision(
                        id=new_id("dec"), review_id=review_id, project_id=project_id, by="human", status="submitted",
                        classification=vote, reasoning="r", reviewer=reviewer, submitted_by="test",
                        created_at=created + timedelta(milliseconds=rng.randint(500, 9_000_000)),
                    )
                )  # fmt: skip
        session.flush()  # the reviews before the decisions that refer to them
        session.add_all(decisions)
        for day in range(0, days, 2):
            session.add(
                Control(
                    id=new_id("ctl"), project_id=project_id, evaluator_type="policy-adherence",
                    classification="compliant", reasoning="r", reviewer="ana", created_at=MONDAY + timedelta(days=day),
                    created_by="test", updated_at=MONDAY,
                )
            )  # fmt: skip
        session.flush()
        agreement_days.mark_all(session, project_id)


def refresh_days(database: Database, project_id: str) -> int:
    """What the project's refresh does first: claim, count and keep the days whose tally is not current."""
    with database.transaction() as session:
        claimed = agreement_days.claim(session, project_id=project_id)
    with database.transaction(write=False) as session:
        counted = agreement_days.count_claimed(session, project_id=project_id, claimed=claimed)
    with database.transaction() as session:
        agreement_days.keep(session, project_id=project_id, counted=counted)
    return len(claimed)


def behind(database: Database, project_id: str) -> set[tuple[str, str]]:
    """The (evaluator, day)s whose tally is not current."""
    with database.transaction(write=False) as session:
        rows = session.execute(
            select(
                AgreementDay.evaluator_type,
                AgreementDay.day,
                AgreementDay.dirty,
                AgreementDay.version,
                AgreementDay.summary_version,
            ).where(AgreementDay.project_id == project_id)
        ).all()
    return {(e, d) for e, d, dirty, version, kept in rows if dirty or kept != version}


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _from_rows(database: Database, project_id: str, kind: str, **scope: Any) -> dict[str, Any]:
    """The report (or trend) of the scope counted from the rows in one pass, no day tallies read."""
    bucket = scope.pop("bucket", "week")
    with database.transaction(write=False) as session:
        tally = Tally.total(
            count_rows(
                session,
                project_id,
                evaluator_type=scope["evaluator_type"],
                start=scope["created_from"],
                end=scope["created_to"],
            ).values()
        )
        if kind == "report":
            return _json(
                agreement.report_of(
                    session, tally, project_id=project_id, evaluator_type=scope["evaluator_type"]
                )
            )
        return _json(
            agreement.trend_of(
                session, tally, project_id=project_id, evaluator_type=scope["evaluator_type"], bucket=bucket
            )
        )


def _from_days(database: Database, project_id: str, kind: str, **scope: Any) -> dict[str, Any]:
    with database.transaction(write=False) as session:
        if kind == "report":
            return _json(agreement.compute_report(session, project_id=project_id, **scope))
        return _json(agreement.compute_trend(session, project_id=project_id, **scope))


def _at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


SCOPES: list[dict[str, Any]] = [
    {"evaluator_type": None, "created_from": None, "created_to": None},
    {"evaluator_type": None, "created_from": _at(1, 10, 17), "created_to": _at(6, 3)},  # cuts two days
    {"evaluator_type": "severity", "created_from": _at(0, 13), "created_to": None},
    {"evaluator_type": "policy-adherence", "created_from": None, "created_to": _at(7, 22, 5)},
    {"evaluator_type": None, "created_from": _at(2), "created_to": _at(5)},  # whole days only
    {"evaluator_type": None, "created_from": _at(3, 4), "created_to": _at(3, 19)},  # within one day
    {"evaluator_type": "nobody", "created_from": None, "created_to": None},
]


def test_a_report_added_up_from_days_is_the_report_counted_from_the_rows(
    admin: httpx.Client, database: Database
) -> None:
    project_id = make_project(admin)
    seed(database, project_id)
    assert refresh_days(database, project_id) == 16  # 8 days with reviews, of two evaluators
    assert behind(database, project_id) == set()
    whole = _from_rows(database, project_id, "report", **SCOPES[0])
    inter = whole["inter_reviewer"]
    assert inter["items"] > 100 and inter["level"] == "nominal" and len(inter["pairs"]) == 10
    assert len(whole["reviewers"]) == 5 and len(whole["judge_vs_human"]) == 3
    assert all(r["median_seconds_to_decide"] > 0 for r in whole["reviewers"])
    for scope in SCOPES:
        for kind, buckets in (("report", [None]), ("trend", ["day", "week"])):
            for bucket in buckets:
                given = {**scope, **({"bucket": bucket} if bucket else {})}
                expected = _from_rows(database, project_id, kind, **given)
                assert _from_days(database, project_id, kind, **given) == expected, (kind, given)
    ordinal = _from_days(database, project_id, "report", **SCOPES[2])["inter_reviewer"]
    assert ordinal["level"] == "ordinal" and ordinal["categories"] == SEVERITY


def test_the_rows_are_counted_as_agreement_has_always_read_them(
    admin: httpx.Client, database: Database
) -> None:
    """The one-pass count against the statistics run on the rows read one by one: each review's ratings
    (casework.services.agreement_stats.inter_rater), each reviewer's decisions and times, and the judge's
    verdicts against people's on the reviews it queued or whose spot check a person resolved."""
    project_id = make_project(admin)
    seed(database, project_id, reviews=300)
    scope = SCOPES[1]
    report = _from_rows(database, project_id, "report", **scope)
    made = (Review.created_at >= scope["created_from"]) & (Review.created_at < scope["created_to"])
    with database.transaction(write=False) as session:
        decisions = session.execute(
            select(Decision, Review)
            .join(Review, Review.id == Decision.review_id)
            .where(Decision.project_id == project_id, Decision.status == "submitted", made)
        ).all()
        judged = session.execute(
            select(Evaluation, Review)
            .join(
                Review,
                (Review.id == Evaluation.review_id)
                | ((Review.subject_id == Evaluation.id) & (Review.kind == "spot_check")),
            )
            .where(
                Evaluation.project_id == project_id,
                Review.status == "resolved",
                Review.resolved_by == "human",
                made,
            )
        ).all()
    inter = report["inter_reviewer"]
    ratings = [Rating(review.id, d.reviewer, d.classification) for d, review in decisions]
    assert {**inter, "level": None} == _json(
        {**inter_rater(ratings, categories=inter["categories"], level=inter["level"]), "level": None}
    )
    for reviewer in report["reviewers"]:
        mine = [(d, review) for d, review in decisions if d.reviewer == reviewer["reviewer"]]
        on_resolved = [d for d, review in mine if review.status == "resolved"]
        agreed = [
            d
            for d, review in mine
            if review.status == "resolved" and d.classification == review.resolution_classification
        ]
        assert (reviewer["decisions"], reviewer["decided_reviews"]) == (len(mine), len(on_resolved))
        assert reviewer["agreement_with_final"] == round(len(agreed) / len(on_resolved), 4)
        times = [(d.created_at - review.created_at).total_seconds() * 1000 for d, review in mine]
        # Each time to the millisecond: the median within half a millisecond of the exact one.
        assert abs(reviewer["median_seconds_to_decide"] - float(np.median(times)) / 1000) <= 0.0006
    assert len(report["judge_vs_human"]) == 3
    for version in report["judge_vs_human"]:
        rows = [(e, review) for e, review in judged if e.evaluator_id == version["evaluator_id"]]
        first = [
            (
                e.initial_classification if e.reevaluated else e.classification,
                review.resolution_classification,
            )
            for e, review in rows
        ]
        again = [(e.classification, review.resolution_classification) for e, review in rows if e.reevaluated]
        labels = POLICY if version["evaluator_type"] == "policy-adherence" else SEVERITY
        assert version["items"] == len(rows) > 0
        assert {**version, "with_memory": None} == _json(
            {
                "evaluator_id": version["evaluator_id"],
                "evaluator_type": version["evaluator_type"],
                "version": version["version"],
                **judge_vs_human(first, labels=labels),
                "with_memory": None,
            }
        )
        assert version["with_memory"] == _json(judge_vs_human(again, labels=labels))


def _policy_review(database: Database, project_id: str, created: datetime) -> str:
    """A pending review for two reviewers, queued at ``created`` (a row written directly: nothing agreement
    reads until someone decides)."""
    review_id = new_id("rev")
    with database.transaction() as session:
        session.add(
            Review(
                id=review_id, project_id=project_id, evaluator_type="policy-adherence", query="q", response="r",
                options=POLICY, classification="ambiguous", status="pending", created_at=created, created_by="test",
                reviewers_required=2,
            )
        )  # fmt: skip
    return review_id


def _feedback(client: httpx.Client, review_id: str, body: dict[str, Any]) -> None:
    client.post(f"/api/v1/hitl/reviews/{review_id}/feedback", json=body).raise_for_status()


def _answers_agree(database: Database, project_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The report from the day tallies, checked against the one counted from the rows; returned."""
    report = _from_days(database, project_id, "report", **scope)
    assert report == _from_rows(database, project_id, "report", **scope)
    trend = {**scope, "bucket": "day"}
    assert _from_days(database, project_id, "trend", **trend) == _from_rows(
        database, project_id, "trend", **trend
    )
    return report


def test_decisions_adjudications_and_resolutions_mark_the_day_their_review_was_made(
    tenant: Tenant, admin: httpx.Client, database: Database, clock: Clock
) -> None:
    at_window_start(
        clock
    )  # the refresh these decisions queue waits for the window's end: the test builds the days
    project_id = overlapped_project(admin, reviewers=2)
    yesterday = clock.now().replace(hour=23, minute=59, second=59, microsecond=0) - timedelta(days=1)
    day = agreement_days.day_of(yesterday)
    policy = "policy-adherence"
    first, second = (_policy_review(database, project_id, yesterday) for _ in range(2))
    scope = {"evaluator_type": None, "created_from": None, "created_to": None}
    part = {"evaluator_type": policy, "created_from": yesterday - timedelta(hours=1), "created_to": None}
    with tenant.client("reviewer") as reviewer:
        _feedback(reviewer, first, decision("ana", "compliant"))
        _feedback(reviewer, first, decision("ben", "compliant"))  # agreed: resolved
        assert behind(database, project_id) == {(policy, day)}  # the day the review was made, not today
        refresh_days(database, project_id)
        assert behind(database, project_id) == set()
        assert _answers_agree(database, project_id, scope)["inter_reviewer"]["items"] == 1

        _feedback(reviewer, second, decision("ana", "compliant"))  # one decision in
        assert behind(database, project_id) == {(policy, day)}
        assert _answers_agree(database, project_id, part)["reviewers"][0]["decisions"] == 2
        refresh_days(database, project_id)
        _feedback(reviewer, second, decision("ben", "non_compliant"))  # they disagree: a lead decides
        assert behind(database, project_id) == {(policy, day)}
        report = _answers_agree(database, project_id, scope)
        assert report["inter_reviewer"]["items"] == 2 and report["reviewers"][0]["decided_reviews"] == 1
    refresh_days(database, project_id)
    _feedback(admin, second, {**decision("lead", "non_compliant"), "adjudicate": True})
    assert behind(database, project_id) == {(policy, day)}
    report = _answers_agree(database, project_id, part)
    ana = report["reviewers"][0]
    assert (ana["reviewer"], ana["decided_reviews"], ana["agreement_with_final"]) == ("ana", 2, 0.5)
    refresh_days(database, project_id)
    assert _answers_agree(database, project_id, part) == report


def test_memory_decisions_and_their_reopening_mark_nothing(
    tenant: Tenant, admin: httpx.Client, database: Database, clock: Clock
) -> None:
    """Agreement reads people's decisions: memory deciding a review, and a control change re-opening it, leave
    every tally current (and the answers equal to a count of the rows); a person confirming it marks its day."""
    at_window_start(clock)
    project_id = overlapped_project(admin, reviewers=1)
    resolved = enqueue(admin, project_id, span_id="a")
    _feedback(admin, resolved["id"], decision("ana", "compliant"))
    control_id = admin.get(f"/api/v1/hitl/reviews/{resolved['id']}").json()["resolution"]["control_id"]
    review = enqueue(admin, project_id, span_id="b")
    refresh_days(database, project_id)
    scope = {"evaluator_type": None, "created_from": None, "created_to": None}
    before = _answers_agree(database, project_id, scope)
    vote = [{"control_id": control_id, "score": 0.9, "classification": "compliant"}]
    with database.transaction() as session:
        outcome = settle_by_memory(
            session,
            review_id=review["id"],
            decision=MemoryDecision("compliant", 0.9, 0.9, "As before.", vote, decides_alone=True),
        )
    assert outcome == "resolved"
    with database.transaction() as session:
        assert reopen(session, review_id=review["id"], reason="its control changed", actor="test")
    with database.transaction() as session:
        settle_by_memory(
            session,
            review_id=review["id"],
            decision=MemoryDecision("compliant", 0.9, 0.9, "As before.", vote, decides_alone=True),
        )
    assert behind(database, project_id) == set()
    assert _answers_agree(database, project_id, scope) == before
    _feedback(admin, review["id"], decision("ben", "compliant"))  # a person confirms memory's decision
    assert behind(database, project_id) == {("policy-adherence", agreement_days.day_of(review["created_at"]))}
    _answers_agree(database, project_id, scope)


def test_a_tally_counted_from_rows_read_before_a_decision_committed_is_not_current(
    tenant: Tenant, admin: httpx.Client, database: Database, clock: Clock
) -> None:
    at_window_start(clock)
    project_id = overlapped_project(admin, reviewers=2)
    scope = {"evaluator_type": None, "created_from": None, "created_to": None}
    with tenant.client("reviewer") as reviewer:
        review = enqueue(admin, project_id, span_id="a")
        _feedback(reviewer, review["id"], decision("ana", "compliant"))
        key = ("policy-adherence", agreement_days.day_of(review["created_at"]))
        # A refresh claims the day and reads its rows; a decision commits; the refresh keeps what it read.
        with database.transaction() as session:
            claimed = agreement_days.claim(session, project_id=project_id)
        with database.transaction(write=False) as session:
            counted = agreement_days.count_claimed(session, project_id=project_id, claimed=claimed)
        _feedback(reviewer, review["id"], decision("ben", "compliant"))
        with database.transaction() as session:
            agreement_days.keep(session, project_id=project_id, counted=counted)
        assert behind(database, project_id) == {key}  # what it kept misses ben's decision: not current
        assert _answers_agree(database, project_id, scope)["inter_reviewer"]["items"] == 1
        # Two refreshes at once: the one that claimed later read later; whichever keeps last, its tally stays.
        with database.transaction() as session:
            older = agreement_days.claim(session, project_id=project_id)
        with database.transaction(write=False) as session:
            older_count = agreement_days.count_claimed(session, project_id=project_id, claimed=older)
        other = enqueue(admin, project_id, span_id="b")
        _feedback(reviewer, other["id"], decision("ana", "non_compliant"))
        with database.transaction() as session:
            newer = agreement_days.claim(session, project_id=project_id)
        with database.transaction(write=False) as session:
            newer_count = agreement_days.count_claimed(session, project_id=project_id, claimed=newer)
        with database.transaction() as session:
            agreement_days.keep(session, project_id=project_id, counted=newer_count)
        with database.transaction() as session:
            agreement_days.keep(session, project_id=project_id, counted=older_count)
    assert behind(database, project_id) == set()
    report = _answers_agree(database, project_id, scope)
    assert [r["decisions"] for r in report["reviewers"]] == [
        2,
        1,
    ]  # the newer count: ana's second decision in


@pytest.mark.only_backend("postgresql")
def test_a_refresh_leaves_a_day_a_writer_holds(admin: httpx.Client, database: Database, clock: Clock) -> None:
    """PostgreSQL: a transaction that marks a day already dirty holds it (shared) until it commits, so a refresh
    cannot clear the flag and read the rows without its change; the refresh leaves that day for the next one."""
    at_window_start(clock)
    project_id = overlapped_project(admin, reviewers=2)
    review = enqueue(admin, project_id, span_id="a")
    _feedback(admin, review["id"], decision("ana", "compliant"))
    key = ("policy-adherence", agreement_days.day_of(review["created_at"]))
    assert behind(database, project_id) == {key}
    writing = database.session(write=True)
    try:
        with writing.begin():
            agreement_days.mark(writing, project_id, *key)  # dirty already: held, not written
            with database.transaction() as session:
                assert agreement_days.claim(session, project_id=project_id) == []
        assert behind(database, project_id) == {key}
        with database.transaction() as session:
            assert [c[:2] for c in agreement_days.claim(session, project_id=project_id)] == [key]
    finally:
        writing.close()


def test_bulk_feedback_is_counted_and_marks_each_day_once(
    tenant: Tenant, admin: httpx.Client, database: Database
) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    reviews = [enqueue(admin, project_id, span_id=f"s{i}")["id"] for i in range(3)]
    items = [
        {"review_id": review_id, "classification": "compliant", "reasoning": "Fine.", "reviewer": name}
        for review_id in reviews
        for name in ("ana", "ben")
    ]
    with tenant.client("reviewer") as reviewer:
        reviewer.post("/api/v1/hitl/reviews/bulk-feedback", json={"feedback": items}).raise_for_status()
    scope = {"evaluator_type": None, "created_from": None, "created_to": None}
    assert _answers_agree(database, project_id, scope)["inter_reviewer"]["items"] == 3
    # In one transaction, a day is marked by its first change only (bulk feedback: one day, many decisions).
    statements: list[str] = []
    with database.transaction() as session:
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", lambda *args: statements.append(args[2]))
        for _ in range(3):
            agreement_days.mark(session, project_id, "policy-adherence", "2026-11-02")
        agreement_days.mark(session, project_id, "policy-adherence", "2026-11-03")
    touched = [s for s in statements if "agreement_days" in s]
    assert len(touched) == 6  # each of the two days once: an update, a locking read, an insert (a new day)
    assert behind(database, project_id) >= {
        ("policy-adherence", "2026-11-02"),
        ("policy-adherence", "2026-11-03"),
    }


def test_marks_in_a_rolled_back_savepoint_are_made_again(admin: httpx.Client, database: Database) -> None:
    project_id = overlapped_project(admin, reviewers=2)
    with database.transaction() as session:
        with pytest.raises(RuntimeError), session.begin_nested():
            agreement_days.mark(session, project_id, "policy-adherence", "2026-11-02")
            raise RuntimeError("the savepoint rolls back")
        agreement_days.mark(session, project_id, "policy-adherence", "2026-11-02")
    assert behind(database, project_id) == {("policy-adherence", "2026-11-02")}
