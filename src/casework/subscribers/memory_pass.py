"""Memory reacting to its own changes, as subscribers.

- ``memory_pass``: a new control queues a pass over the pending reviews it may settle; a re-opened review, and
  a pending one whose suggestion cites a control that was corrected or retired, is decided again under today's
  memory.
- ``evidence``: every human decision is replayed as if memory had made it (a job: it may call the judge).
- ``provenance``: a control whose classification changed, or that was retired, re-opens every review memory
  resolved with it and marks the evaluations it decided as superseded; a person overturning memory flags the
  controls that voted for the wrong classification and re-opens what else they resolved; a spot check that
  disagrees overturns the decision it checked.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from casework.db.models import Event
from casework.events import EventType
from casework.services import evidence, memory_pass, provenance
from casework.services.jobs import queue_job
from casework.subscribers import Subscriber

PASS = "memory_pass"
REPLAY = "memory.replay"
CHANGED = frozenset({EventType.control_updated.value, EventType.control_retired.value})


def _by_project(events: list[Event]) -> dict[str | None, list[Event]]:
    grouped: dict[str | None, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.project_id, []).append(event)
    return grouped


def handle_pass(session: Session, events: list[Event]) -> None:
    # One pass per project for all the controls of a batch: a burst of decisions (a bulk import) is one pass
    # over the pending reviews, not hundreds. Keyed by the batch's first event: read twice, queued once.
    for project_id, group in _by_project(events).items():
        created = [e.object_id for e in group if e.type == EventType.control_created.value]
        again = [e.object_id for e in group if e.type == EventType.review_reopened.value]
        changed: dict[str, list[str]] = {}  # by evaluator: one read of its pending reviews per batch
        for event in group:
            if event.type in CHANGED and project_id is not None:
                changed.setdefault(str(event.data.get("evaluator_type")), []).append(event.object_id)
        for evaluator_type, control_ids in sorted(changed.items()):
            again += memory_pass.pending_citing(
                session, project_id=str(project_id), evaluator_type=evaluator_type, control_ids=control_ids
            )
        if not created and not again:
            continue
        queue_job(
            session,
            kind=PASS,
            project_id=project_id,
            payload={"control_ids": created, "review_ids": list(dict.fromkeys(again))},
            dedupe_key=f"{PASS}:{group[0].id}",
        )


def handle_evidence(session: Session, events: list[Event]) -> None:
    for project_id, group in _by_project(events).items():
        decided: list[str] = []
        for event in group:
            if (event.data.get("resolution") or {}).get("resolved_by") == "human":
                decided.append(event.object_id)
            elif _new_memory_method(event):
                # Memory decides another way now: its evidence is every past decision, replayed that way.
                decided += evidence.human_decisions(
                    session, project_id=str(event.project_id), evaluator_type=str(event.data["name"])
                )
        if decided:
            queue_job(
                session,
                kind=REPLAY,
                project_id=project_id,
                payload={"review_ids": list(dict.fromkeys(decided))},
                dedupe_key=f"{REPLAY}:{group[0].id}",
            )


def _new_memory_method(event: Event) -> bool:
    return (
        event.type == EventType.evaluator_updated.value
        and event.before is not None
        and event.before.get("memory_method") != event.data.get("memory_method")
    )


def handle_provenance(session: Session, events: list[Event]) -> None:
    for event in events:
        provenance.follow(session, event)


SUBSCRIBER = Subscriber(
    name="memory_pass",
    handle=handle_pass,
    types=frozenset({EventType.control_created.value, EventType.review_reopened.value}) | CHANGED,
)
EVIDENCE = Subscriber(
    name="evidence",
    handle=handle_evidence,
    types=frozenset({EventType.review_resolved.value, EventType.evaluator_updated.value}),
)

PROVENANCE = Subscriber(
    name="provenance",
    handle=handle_provenance,
    types=frozenset(
        {EventType.control_updated.value, EventType.control_retired.value, EventType.review_resolved.value}
    ),
)
