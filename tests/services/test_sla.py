"""SLA policies and the review clock: due times set when queued (per project, per evaluator), the queue's
due-time filters and order, a re-opened review's new clock, and the sweep's alerts (once each), queue thresholds
(with hysteresis) and paused clocks. Time moves with the ``clock`` fixture, never with sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, event, func, select

from casework.db.engine import Database
from casework.db.models import Event, Integration, IntegrationLink, Review
from casework.events import EventType
from casework.services import integration_decisions, queue_metrics, review_counts, sla, sla_sweep
from casework.services.reviews import MemoryDecision, reopen, settle_by_memory
from tests.support import POLICY_EVALUATOR, Clock, Tenant, enqueue, make_project, make_reviews

pytestmark = pytest.mark.storage


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def put_policy(admin: httpx.Client, project_id: str, **body: Any) -> dict[str, Any]:
    response = admin.put(f"/api/v1/projects/{project_id}/sla", json={"target_hours": 10, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def sweep(database: Database) -> None:
    with database.transaction() as session:
        sla_sweep.pause_and_resume(session)
    with database.transaction() as session:
        sla_sweep.announce_overdue(session)
    with database.transaction() as session:
        sla_sweep.announce_due_soon(session)
    with database.transaction() as session:
        sla_sweep.check_thresholds(session)


def events_of(database: Database, project_id: str, type: EventType) -> list[Event]:
    with database.transaction(write=False) as session:
        return list(
            session.execute(
                select(Event)
                .where(Event.project_id == project_id, Event.type == type.value)
                .order_by(Event.seq)
            ).scalars()
        )


def test_the_policy_reads_back_and_is_the_one_knob_with_review_target_hours(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    default = admin.get(f"/api/v1/projects/{project_id}/sla").json()
    assert (default["target_hours"], default["warning_at"], default["pause_when_waiting"]) == (
        24.0,
        0.75,
        False,
    )
    policy = put_policy(
        admin,
        project_id,
        warning_at=0.5,
        escalation_contact="lead@bank.example",
        evaluators={"toxicity": {"target_hours": 2}},
        queue_thresholds={"pending_count": 100},
    )
    assert policy["evaluators"] == {
        "toxicity": {
            "target_hours": 2.0,
            "warning_at": None,
            "escalation_contact": None,
            "pause_when_waiting": None,
        }
    }
    assert policy["queue_thresholds"]["pending_count"] == 100
    assert admin.get(f"/api/v1/projects/{project_id}").json()["review_target_hours"] == 10.0
    admin.patch(f"/api/v1/projects/{project_id}", json={"review_target_hours": 6}).raise_for_status()
    assert admin.get(f"/api/v1/projects/{project_id}/sla").json()["target_hours"] == 6.0
    refused = admin.put(
        f"/api/v1/projects/{project_id}/sla", json={"target_hours": 1, "evaluators": {"x": {"colour": "red"}}}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "validation_error"


def test_a_review_is_due_by_its_evaluators_policy(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id, evaluators={"toxicity": {"target_hours": 2}})
    review = enqueue(admin, project_id)
    fast = enqueue(admin, project_id, evaluator_type="toxicity")
    assert parse(review["due_at"]) - parse(review["created_at"]) == timedelta(hours=10)
    assert parse(fast["due_at"]) - parse(fast["created_at"]) == timedelta(hours=2)
    assert admin.get(f"/api/v1/hitl/reviews/{fast['id']}").json()["due_at"] == fast["due_at"]
    exported = admin.get("/api/v1/hitl/reviews/export", params={"project_id": project_id}).json()["reviews"]
    assert {r["id"]: parse(r["due_at"]) for r in exported} == {
        r["id"]: parse(r["due_at"]) for r in (review, fast)
    }


def test_the_queue_filters_and_sorts_by_due_time(admin: httpx.Client, clock: Clock) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id, evaluators={"fast": {"target_hours": 1}, "slow": {"target_hours": 20}})
    slow = enqueue(admin, project_id, evaluator_type="slow", priority=5)
    fast = [enqueue(admin, project_id, evaluator_type="fast", span_id=f"s{i}") for i in range(3)]
    middle = enqueue(admin, project_id)  # the project's 10 hours

    def ids(**params: Any) -> list[str]:
        found, cursor = [], None
        while True:
            page = admin.get(
                "/api/v1/hitl/reviews",
                params={
                    "project_id": project_id,
                    "limit": 2,
                    **params,
                    **({"cursor": cursor} if cursor else {}),
                },
            ).json()
            found += [r["id"] for r in page["reviews"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    assert ids(sort="due") == [r["id"] for r in fast] + [middle["id"], slow["id"]]
    assert ids()[0] == slow["id"]  # the default order: priority first
    assert ids(overdue="true") == []
    clock.advance(hours=2)
    assert ids(overdue="true", sort="due") == [r["id"] for r in fast]
    before = (clock.now() + timedelta(hours=9)).isoformat()
    assert ids(due_before=before, sort="due") == [r["id"] for r in fast] + [middle["id"]]


def test_a_reopened_review_starts_a_new_clock(
    admin: httpx.Client, database: Database, tenant: Tenant, clock: Clock
) -> None:
    project_id = make_project(admin)
    (review_id,) = make_reviews(database, tenant, project_id, 1)
    with database.transaction() as session:
        settle_by_memory(
            session,
            review_id=review_id,
            decision=MemoryDecision("a", 0.99, 0.99, "As before.", [], decides_alone=True),
        )
    later = clock.advance(hours=30)
    with database.transaction() as session:
        assert reopen(session, review_id=review_id, reason="control retired", actor="test")
    reopened = admin.get(f"/api/v1/hitl/reviews/{review_id}").json()
    assert abs(parse(reopened["due_at"]) - (later + timedelta(hours=24))) < timedelta(seconds=5)


def test_due_soon_and_overdue_are_announced_once_each(
    admin: httpx.Client, database: Database, clock: Clock
) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id, escalation_contact="lead@bank.example")
    review = enqueue(admin, project_id)
    sweep(database)
    assert events_of(database, project_id, EventType.review_due_soon) == []
    clock.advance(hours=8)  # past 75% of 10 hours
    sweep(database)
    sweep(database)
    (due_soon,) = events_of(database, project_id, EventType.review_due_soon)
    assert (due_soon.object_id, due_soon.data["sla"]["escalation_contact"]) == (
        review["id"],
        "lead@bank.example",
    )
    assert events_of(database, project_id, EventType.review_overdue) == []
    clock.advance(hours=3)
    sweep(database)
    sweep(database)
    (overdue,) = events_of(database, project_id, EventType.review_overdue)
    assert overdue.data["id"] == review["id"]
    assert len(events_of(database, project_id, EventType.review_due_soon)) == 1
    with database.transaction(write=False) as session:
        # Alerts leave the review's state, and so the kept counts, as they were.
        assert review_counts.counts(session, project_id)[review_counts.PENDING] == 1


def test_a_review_found_late_is_announced_overdue_only(
    admin: httpx.Client, database: Database, clock: Clock
) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id)
    enqueue(admin, project_id)
    admin.post(
        f"/api/v1/hitl/reviews/{enqueue(admin, project_id, span_id='x')['id']}/claim"
    ).raise_for_status()
    clock.advance(hours=11)
    sweep(database)
    assert len(events_of(database, project_id, EventType.review_overdue)) == 2
    assert events_of(database, project_id, EventType.review_due_soon) == []
    with database.transaction(write=False) as session:
        assert (
            review_counts.counts(session, project_id)[review_counts.PENDING] == 2
        )  # the claim counted nothing


def test_resolved_reviews_are_never_announced(admin: httpx.Client, database: Database, clock: Clock) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id)
    review = enqueue(admin, project_id)
    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "a@b.example"},
    ).raise_for_status()
    clock.advance(hours=11)
    sweep(database)
    assert events_of(database, project_id, EventType.review_overdue) == []


def test_queue_thresholds_cross_and_clear_with_hysteresis(
    admin: httpx.Client, database: Database, tenant: Tenant
) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id, queue_thresholds={"pending_count": 10})
    ids = make_reviews(database, tenant, project_id, 10)

    def decide(review_id: str) -> None:
        admin.post(
            f"/api/v1/hitl/reviews/{review_id}/feedback",
            json={"classification": "a", "reasoning": "Fine.", "reviewer": "a@b.example"},
        ).raise_for_status()

    sweep(database)
    sweep(database)
    (crossed,) = events_of(database, project_id, EventType.queue_threshold_crossed)
    assert (crossed.data["metric"], crossed.data["value"], crossed.data["clear_below"]) == (
        "pending_count",
        10,
        8,
    )
    assert admin.get(f"/api/v1/projects/{project_id}/sla").json()["queue_alerts"]["pending_count_since"]
    for review_id in ids[:2]:  # 8 pending: under the threshold, not under 80% of it
        decide(review_id)
    sweep(database)
    assert events_of(database, project_id, EventType.queue_threshold_cleared) == []
    make_reviews(database, tenant, project_id, 2)  # 10 again: still the same crossing
    sweep(database)
    assert len(events_of(database, project_id, EventType.queue_threshold_crossed)) == 1
    for review_id in ids[2:5]:  # 7 pending: below 80%
        decide(review_id)
    sweep(database)
    sweep(database)
    (cleared,) = events_of(database, project_id, EventType.queue_threshold_cleared)
    assert cleared.data["value"] == 7
    assert (
        admin.get(f"/api/v1/projects/{project_id}/sla").json()["queue_alerts"]["pending_count_since"] is None
    )


def test_the_oldest_pending_age_threshold(admin: httpx.Client, database: Database, clock: Clock) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id, queue_thresholds={"oldest_pending_hours": 5})
    review = enqueue(admin, project_id)
    clock.advance(hours=6)
    sweep(database)
    (crossed,) = events_of(database, project_id, EventType.queue_threshold_crossed)
    assert crossed.data["metric"] == "oldest_pending_hours"
    admin.post(
        f"/api/v1/hitl/reviews/{review['id']}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "a@b.example"},
    ).raise_for_status()
    sweep(database)
    assert len(events_of(database, project_id, EventType.queue_threshold_cleared)) == 1


def link_ticket(database: Database, tenant: Tenant, review_id: str, kind: str = "jira") -> None:
    with database.transaction() as session:
        integration = Integration(
            id=f"int_{review_id[-10:]}{kind[:3]}",
            workspace_id=tenant.workspace_id,
            kind=kind,
            events=["review.created"],
            config={},
            secrets="",
            created_by="test",
        )
        session.add(integration)
        session.flush()
        session.add(IntegrationLink(integration_id=integration.id, review_id=review_id, external_id="CASE-1"))


def test_a_review_waiting_on_a_ticket_pauses_its_clock(
    admin: httpx.Client, database: Database, tenant: Tenant, clock: Clock
) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id, pause_when_waiting=True)
    waiting = enqueue(admin, project_id)
    chatting = enqueue(admin, project_id, span_id="chat")
    link_ticket(database, tenant, waiting["id"])
    link_ticket(database, tenant, chatting["id"], kind="slack")  # a chat message is not waiting on anyone
    clock.advance(hours=1)
    sweep(database)
    paused = admin.get(f"/api/v1/hitl/reviews/{waiting['id']}").json()
    assert paused["paused_at"] is not None
    assert admin.get(f"/api/v1/hitl/reviews/{chatting['id']}").json()["paused_at"] is None
    clock.advance(hours=20)
    sweep(database)
    assert [e.object_id for e in events_of(database, project_id, EventType.review_overdue)] == [
        chatting["id"]
    ]
    listed = admin.get("/api/v1/hitl/reviews", params={"project_id": project_id, "overdue": "true"}).json()
    assert [r["id"] for r in listed["reviews"]] == [chatting["id"]]
    # The policy stops pausing: the clock resumes, its due time moved on by the 20 hours it was paused.
    put_policy(admin, project_id, pause_when_waiting=False)
    sweep(database)
    resumed = admin.get(f"/api/v1/hitl/reviews/{waiting['id']}").json()
    assert resumed["paused_at"] is None
    moved = parse(resumed["due_at"]) - parse(waiting["due_at"])
    assert timedelta(hours=19, minutes=59) < moved < timedelta(hours=20, minutes=1)
    with database.transaction(write=False) as session:
        overdue = session.execute(
            select(func.count()).where(Review.project_id == project_id, Review.overdue_sent_at.is_not(None))
        ).scalar_one()
    assert overdue == 1


def test_the_overdue_count_is_exact_whether_counted_directly_or_as_pending_less_what_is_not_overdue(
    admin: httpx.Client, database: Database, tenant: Tenant, clock: Clock
) -> None:
    """Four reviews due in 10 hours, two queued 5 hours later; two of the first four wait on a ticket (their
    clocks paused) and one of those is decided. Eleven hours on: two are overdue (b and d), however counted."""
    project_id = make_project(admin)
    put_policy(admin, project_id, pause_when_waiting=True)
    a, b, c, d = (enqueue(admin, project_id, span_id=name)["id"] for name in "abcd")
    link_ticket(database, tenant, a)
    link_ticket(database, tenant, c, kind="zendesk")
    clock.advance(hours=1)
    sweep(database)  # a and c pause
    clock.advance(hours=4)
    enqueue(admin, project_id, span_id="e")
    enqueue(admin, project_id, span_id="f")
    admin.post(
        f"/api/v1/hitl/reviews/{a}/feedback",
        json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "alice@bank.example"},
    ).raise_for_status()
    now = clock.advance(hours=6)
    with database.transaction(write=False) as session:
        counted = {
            directly: sla.overdue_count(session, project_id=project_id, now=now, counted_directly=directly)
            for directly in (0, 1, 2, 100)
        }
    assert counted == {0: 2, 1: 2, 2: 2, 100: 2}
    report = admin.get(f"/api/v1/projects/{project_id}/sla-report").json()
    assert (report["overdue_count"], sorted(r["id"] for r in report["overdue"])) == (2, sorted([b, d]))
    # Another project's paused review is not this one's.
    other = make_project(admin, "other")
    put_policy(admin, other, pause_when_waiting=True)
    late = enqueue(admin, other, span_id="late")["id"]
    link_ticket(database, tenant, late, kind="servicenow")
    clock.advance(hours=1)
    sweep(database)
    now = clock.advance(hours=12)
    with database.transaction(write=False) as session:
        # e and f are now overdue too; the other project's one review waits on its ticket.
        assert sla.overdue_count(session, project_id=project_id, now=now, counted_directly=0) == 4
        assert sla.overdue_count(session, project_id=other, now=now, counted_directly=0) == 0
    assert c


def disagreed(admin: httpx.Client, project_id: str, span_id: str) -> dict[str, Any]:
    """A review its two reviewers decided differently: it waits for a lead (needs_adjudication)."""
    review = enqueue(admin, project_id, span_id=span_id)
    for reviewer, classification in (
        ("ana@bank.example", "compliant"),
        ("ben@bank.example", "non_compliant"),
    ):
        admin.post(
            f"/api/v1/hitl/reviews/{review['id']}/feedback",
            json={"classification": classification, "reasoning": "Read it.", "reviewer": reviewer},
        ).raise_for_status()
    found: dict[str, Any] = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()
    assert found["status"] == "needs_adjudication"
    return found


def overlapped(admin: httpx.Client, **policy: Any) -> str:
    """A project whose reviews need two reviewers, with a 10-hour SLA."""
    project_id = make_project(admin)
    created = admin.post("/api/v1/evaluators", json={**POLICY_EVALUATOR, "project_id": project_id}).json()
    admin.patch(f"/api/v1/evaluators/{created['id']}", json={"reviewers_required": 2}).raise_for_status()
    put_policy(admin, project_id, **policy)
    return project_id


def adjudicate(admin: httpx.Client, review_id: str) -> None:
    admin.post(
        f"/api/v1/hitl/reviews/{review_id}/feedback",
        json={
            "classification": "non_compliant",
            "reasoning": "Policy 4.2.",
            "reviewer": "lead@bank.example",
            "adjudicate": True,
        },
    ).raise_for_status()


def test_a_review_waiting_for_a_lead_is_on_the_clock_like_a_pending_one(
    admin: httpx.Client, database: Database, clock: Clock
) -> None:
    project_id = overlapped(admin)
    review = disagreed(admin, project_id, "split")
    clock.advance(hours=8)
    sweep(database)
    sweep(database)
    assert [e.object_id for e in events_of(database, project_id, EventType.review_due_soon)] == [review["id"]]
    now = clock.advance(hours=3)
    sweep(database)
    sweep(database)
    assert [e.object_id for e in events_of(database, project_id, EventType.review_overdue)] == [review["id"]]
    assert len(events_of(database, project_id, EventType.review_due_soon)) == 1
    with database.transaction(write=False) as session:
        counted = {
            directly: sla.overdue_count(session, project_id=project_id, now=now, counted_directly=directly)
            for directly in (0, 100)
        }
        assert queue_metrics.snapshot(session, now=now).overdue.get(project_id) == 1
    assert counted == {0: 1, 100: 1}
    report = admin.get(f"/api/v1/projects/{project_id}/sla-report").json()
    assert (report["overdue_count"], [r["id"] for r in report["overdue"]]) == (1, [review["id"]])
    adjudicate(admin, review["id"])  # decided 11 hours after it was queued: a breach of the 10 hours
    report = admin.get(f"/api/v1/projects/{project_id}/sla-report").json()
    assert (report["overall"]["breached"], report["overdue_count"]) == (1, 0)


def test_a_policy_that_pauses_stops_the_clock_while_a_lead_is_awaited(
    admin: httpx.Client, database: Database, clock: Clock
) -> None:
    """Due in 10 hours; the reviewers disagree within the first hour and a lead rules 20 hours later: the 20 hours
    waiting for the lead are not counted, so nothing is overdue and the decision is within its SLA."""
    project_id = overlapped(admin, pause_when_waiting=True)
    review = disagreed(admin, project_id, "split")
    back = disagreed(admin, project_id, "back")
    clock.advance(hours=1)
    sweep(database)
    for waiting in (review, back):
        assert admin.get(f"/api/v1/hitl/reviews/{waiting['id']}").json()["paused_at"] is not None
    now = clock.advance(hours=20)
    sweep(database)
    assert events_of(database, project_id, EventType.review_due_soon) == []
    assert events_of(database, project_id, EventType.review_overdue) == []
    with database.transaction(write=False) as session:
        assert sla.overdue_count(session, project_id=project_id, now=now, counted_directly=0) == 0
        assert queue_metrics.snapshot(session, now=now).overdue.get(project_id, 0) == 0
    with database.transaction() as session:
        # Should a review go back to pending (nothing sends one back today), it no longer waits for a lead: its
        # clock resumes.
        session.get_one(Review, back["id"]).status = "pending"
    adjudicate(admin, review["id"])
    decided = admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()
    moved = parse(decided["due_at"]) - parse(review["due_at"])
    assert timedelta(hours=19, minutes=59) < moved < timedelta(hours=20, minutes=1)
    report = admin.get(f"/api/v1/projects/{project_id}/sla-report").json()
    assert (report["overall"]["decided"], report["overall"]["breached"]) == (1, 0)
    trends = admin.get(f"/api/v1/projects/{project_id}/trends").json()["buckets"]
    assert sum(b["resolved_by_people"] for b in trends) == 1 and sum(b["breached"] for b in trends) == 0
    sweep(database)
    resumed = admin.get(f"/api/v1/hitl/reviews/{back['id']}").json()
    assert resumed["paused_at"] is None
    moved = parse(resumed["due_at"]) - parse(back["due_at"])
    assert timedelta(hours=19, minutes=59) < moved < timedelta(hours=20, minutes=1)


def test_the_sweep_and_the_overdue_count_read_indexes_never_every_review(
    admin: httpx.Client, database: Database, tenant: Tenant, clock: Clock
) -> None:
    """What the sweep and the overdue count ask of the reviews, each an index seek (or a read of a small partial
    index), never a walk through every review or every pending one: with a million reviews they must cost what
    they cost with ten."""
    project_id = overlapped(admin, pause_when_waiting=True)
    disagreed(admin, project_id, "split")
    enqueue(admin, project_id, span_id="pending")
    link_ticket(database, tenant, enqueue(admin, project_id, span_id="ticketed")["id"])
    clock.advance(hours=1)
    sweep(database)  # two clocks paused, so that the sweep also reads what the paused ones wait on
    link_ticket(database, tenant, enqueue(admin, project_id, span_id="ticketed later")["id"])
    now = clock.advance(hours=20)
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "reviews" in statement:
            statements.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        with database.transaction() as session:
            sla_sweep.pause_and_resume(session, now=now)
            sla_sweep.announce_overdue(session, now=now)
            sla_sweep.announce_due_soon(session, now=now)
            sla.overdue_count(session, project_id=project_id, now=now, counted_directly=0)
            session.rollback()
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert len(statements) >= 8
    with database.engine.connect() as connection:
        if database.dialect == "postgresql":
            # Ask what the indexes can serve, not what a tiny table's statistics make cheapest.
            connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            prefix = "EXPLAIN " if database.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
            plan = "\n".join(
                str(row[-1]) for row in connection.exec_driver_sql(prefix + statement, parameters)
            )
            assert "SCAN reviews" not in plan and "Seq Scan on reviews" not in plan, (statement, plan)
            if database.dialect == "sqlite":
                # The index of the reviews by status serves those waiting for a lead (few), never a walk through
                # the pending ones. (SQLite plans without statistics, as it will at a million reviews; PostgreSQL
                # picks among indexes by statistics, and on a table this small any index is as cheap.)
                assert "ix_reviews_queue" not in plan or "'pending'" not in statement, (statement, plan)


def test_overdue_lists_the_reviews_waiting_for_a_decision_past_their_due_time_and_nothing_else(
    admin: httpx.Client, clock: Clock
) -> None:
    project_id = overlapped(admin)  # its policy-adherence reviews need two reviewers; "quick" ones one

    def quick(span_id: str) -> str:
        review_id: str = enqueue(admin, project_id, evaluator_type="quick", span_id=span_id)["id"]
        return review_id

    def decide(review_id: str) -> None:
        admin.post(
            f"/api/v1/hitl/reviews/{review_id}/feedback",
            json={"classification": "compliant", "reasoning": "Fine.", "reviewer": "ana@bank.example"},
        ).raise_for_status()

    late = quick("late")
    split = disagreed(admin, project_id, "split")["id"]
    decide(quick("in time"))
    decided_late = quick("decided late")
    clock.advance(hours=9)
    not_yet = quick("not yet due")
    clock.advance(hours=2)
    decide(decided_late)  # resolved, and past its due time: decided late, not overdue

    def ids(path: str = "", **params: Any) -> list[str]:
        found = admin.get(
            f"/api/v1/hitl/reviews{path}", params={"project_id": project_id, "overdue": "true", **params}
        )
        assert found.status_code == 200, found.text
        return [r["id"] for r in found.json()["reviews"]]

    both = sorted([late, split])
    assert sorted(ids()) == sorted(ids(sort="due")) == sorted(ids(status="all")) == both
    assert sorted(ids("/export")) == both
    assert (ids(status="pending"), ids(status="needs_adjudication"), ids(status="resolved")) == (
        [late],
        [split],
        [],
    )
    assert not_yet not in ids(status="all")


def test_a_ticket_pauses_the_clock_only_while_it_is_open(
    admin: httpx.Client, database: Database, tenant: Tenant, clock: Clock
) -> None:
    project_id = make_project(admin)
    put_policy(admin, project_id, pause_when_waiting=True)
    review = enqueue(admin, project_id)
    link_ticket(database, tenant, review["id"])
    integration_id = f"int_{review['id'][-10:]}jir"

    def state(closed: bool) -> int:
        with database.transaction() as session:
            return integration_decisions.note_ticket_state(
                session, integration_id=integration_id, external_id="CASE-1", closed=closed
            )

    def paused() -> bool:
        sweep(database)
        return admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["paused_at"] is not None

    clock.advance(hours=1)
    assert paused()
    clock.advance(hours=5)
    assert state(closed=True) == 1  # the tool closed the ticket
    with database.transaction(write=False) as session:
        closed_at = session.get_one(IntegrationLink, (integration_id, review["id"])).closed_at
    clock.advance(minutes=1)
    state(closed=True)  # and said it again: closed since the first time
    with database.transaction(write=False) as session:
        assert session.get_one(IntegrationLink, (integration_id, review["id"])).closed_at == closed_at
    assert not paused()
    moved = parse(admin.get(f"/api/v1/hitl/reviews/{review['id']}").json()["due_at"]) - parse(
        review["due_at"]
    )
    assert timedelta(hours=5) < moved < timedelta(hours=5, minutes=2)
    assert state(closed=False) == 1  # reopened: waiting on someone outside again
    assert paused()
    with database.transaction() as session:  # the link gone (its integration removed): no longer waiting
        session.execute(delete(IntegrationLink).where(IntegrationLink.review_id == review["id"]))
    assert not paused()
