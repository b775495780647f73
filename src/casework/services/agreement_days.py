"""Agreement's day tallies, kept in the database: per project, evaluator and UTC day of the reviews' creation, the
counts agreement reads (casework.services.agreement_tallies), so that a report over any dates adds up the tallies
of its whole days and counts from the rows only its part-days at either end and any day changed since its tally
was kept. At 100,000 overlapped reviews a report over all of them reads a few hundred small rows instead of
joining 300,000 decisions with themselves.

**Kept exact.** ``events.emit`` is where every change is recorded; for the review events that can change what
agreement reads, it calls ``follow``, which marks the review's day dirty in the same transaction. Every write
agreement reads comes with one: a submitted decision with its review's decision_submitted, needs_adjudication or
resolved event; a review's status and resolution change with resolved, reopened and needs_adjudication; the
evaluation a judge-vs-human comparison reads is written with its review, before anyone can resolve it, and is
not changed afterwards. Agreement reads people's decisions only: memory deciding a review (only ever one nobody
decided) and a control change re-opening memory's decision (the only decisions re-opened) change nothing it
reads and mark nothing, so a project decided by memory alone keeps no tallies. Marking costs a transaction one to
three short statements per day it changes, once however many decisions it writes on that day. A day's tally holds the reviews of its evaluator (``reviews.evaluator_type``); the judge's comparisons are kept
with the review's evaluator, which is the evaluation's (the evaluation that queued a review, or whose verdict a
spot check checks, names the same evaluator). Rows written around the services (benchmarks, older tests) are
not followed: ``mark_all`` marks their days, as ``review_counts.recount`` recounts.

**Refreshed without losing a change.** The project's refresh (casework.worker.agreement) counts the days whose
tally is not current in three transactions: ``claim`` clears their dirty flags and bumps their ``version``
(committed), ``count_claimed`` then reads the rows (a read transaction begun after the claim committed), and
``keep`` stores each tally under the version it claimed unless a later claim's tally is there already (two
refreshes at once: the later data stays). A change committed before the claim is in the tally; one made after it
sets the flag again, so the tally is not current and reports count that day from the rows until the next
refresh; a refresh that died between claim and keep leaves ``summary_version`` behind ``version``, not current
either. The case to rule out is a writer that marked a day before the claim and commits after the count's read
began. On SQLite writers are serialised: the claim is a write and waits for it. On PostgreSQL the writer's mark
holds the day's row until it commits: ``UPDATE ... SET dirty WHERE NOT dirty`` (a clean day: an exclusive lock,
taken by the first writer only) or, when the day is dirty already, ``SELECT ... FOR SHARE`` (a share lock, which
concurrent writers hold together, so a hot day does not serialise them). The claim takes only rows nobody holds
(``FOR UPDATE SKIP LOCKED``): a day being written to stays dirty, for the refresh that write's event queues, and
a refresh never waits for, or deadlocks with, a reviewer's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Table, bindparam, exists, literal, or_, select, update
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict, insert_statement, utc_day
from casework.db.models import AgreementDay, Review
from casework.db.types import utcnow
from casework.services.agreement_tallies import Key, Tally, count_rows

# Set on a session: the days its current transaction (or savepoint) marked already, so that bulk feedback marks
# each day once however many decisions it writes.
_MARKED = "casework_agreement_days_marked"
_TABLE: Table = AgreementDay.__table__  # type: ignore[assignment]

Claimed = tuple[str, str, int]  # (evaluator_type, day, version)
# One day's row, by bound parameters: for the statements that write many days at once.
_ONE_DAY = (
    (_TABLE.c.project_id == bindparam("b_project"))
    & (_TABLE.c.evaluator_type == bindparam("b_evaluator"))
    & (_TABLE.c.day == bindparam("b_day"))
)


def day_of(moment: datetime | str) -> str:
    """The UTC day (``YYYY-MM-DD``) of a time, or of its ISO 8601 text as the API writes it."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d")


def follow(
    session: Session, project_id: str, *, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> None:
    """Mark the review's day dirty when a review event can change what agreement reads: the review has people's
    decisions (``decisions_submitted``: each independent decision, or a person's resolution), or a person
    resolved it, now or before."""
    resolution = after.get("resolution") or {}
    people = (
        (after.get("decisions_submitted") or 0) > 0
        or resolution.get("resolved_by") == "human"
        or (before or {}).get("resolved_by") == "human"
    )
    if people:
        mark(session, project_id, after["evaluator_type"], day_of(after["created_at"]))


def _marked_in(session: Session) -> set[tuple[str, str, str]]:
    transaction = session.get_nested_transaction() or session.get_transaction()
    held = session.info.get(_MARKED)
    # A new transaction, or a savepoint (its marks roll back with it), starts its own set.
    if held is None or held[0] is not transaction:
        held = session.info[_MARKED] = (transaction, set())
    marked: set[tuple[str, str, str]] = held[1]
    return marked


def _row(project_id: str, evaluator_type: str, day: str) -> Any:
    return (
        (AgreementDay.project_id == project_id)
        & (AgreementDay.evaluator_type == evaluator_type)
        & (AgreementDay.day == day)
    )


def mark(session: Session, project_id: str, evaluator_type: str, day: str) -> None:
    """Mark one day dirty in the current transaction, holding its row until the commit (see the module's
    docstring): a clean day is set dirty, a dirty one share-locked, a new one inserted dirty."""
    marked = _marked_in(session)
    if (project_id, evaluator_type, day) in marked:
        return
    row = _row(project_id, evaluator_type, day)
    for _ in range(3):  # each miss means a refresh claimed the day in between: the next try sets it dirty
        cleaned = session.execute(
            update(AgreementDay)
            .where(row, AgreementDay.dirty.is_(False))
            .values(dirty=True)
            .execution_options(synchronize_session=False)
        )
        if getattr(cleaned, "rowcount", 0):
            break
        held = session.execute(
            select(AgreementDay.day).where(row, AgreementDay.dirty.is_(True)).with_for_update(read=True)
        ).first()
        if held is not None:
            break
        values = {
            "project_id": project_id,
            "evaluator_type": evaluator_type,
            "day": day,
            "dirty": True,
            "version": 0,
        }
        if insert_ignoring_conflict(
            session, AgreementDay, values, conflict_columns=["project_id", "evaluator_type", "day"]
        ):
            break
    else:
        session.execute(
            update(AgreementDay).where(row).values(dirty=True).execution_options(synchronize_session=False)
        )
    marked.add((project_id, evaluator_type, day))


def mark_all(session: Session, project_id: str) -> None:
    """Mark every day of the project that has what agreement reads (independent decisions, or a person's
    resolution), for rows written around the services; the next refresh counts them."""
    day = utc_day(session, Review.created_at)
    has_people = (Review.decisions_submitted > 0) | (
        (Review.status == "resolved") & (Review.resolved_by == "human")
    )
    days = (
        select(Review.project_id, Review.evaluator_type, day, literal(True), literal(0))
        .where(Review.project_id == project_id, has_people)
        .distinct()
    )
    statement = insert_statement(session, AgreementDay).from_select(
        ["project_id", "evaluator_type", "day", "dirty", "version"], days
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["project_id", "evaluator_type", "day"], set_={"dirty": True}
        )
    )


def _not_current() -> Any:
    return or_(
        AgreementDay.dirty.is_(True),
        AgreementDay.summary_version.is_(None),
        AgreementDay.summary_version != AgreementDay.version,
    )


def needs_refresh(session: Session, project_id: str) -> bool:
    """Whether any of the project's days has no current tally."""
    return bool(
        session.execute(
            select(exists().where(AgreementDay.project_id == project_id, _not_current()))
        ).scalar_one()
    )


def claim(session: Session, *, project_id: str) -> list[Claimed]:
    """Take the project's days without a current tally for counting: their dirty flags cleared, their versions
    bumped (commit before counting them). Days a writer holds now are left for the next refresh."""
    rows = session.execute(
        select(AgreementDay.evaluator_type, AgreementDay.day, AgreementDay.version)
        .where(AgreementDay.project_id == project_id, _not_current())
        .order_by(AgreementDay.evaluator_type, AgreementDay.day)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = [(evaluator_type, day, version + 1) for evaluator_type, day, version in rows]
    if claimed:
        session.execute(
            update(_TABLE).where(_ONE_DAY).values(dirty=False, version=bindparam("b_version")),
            [{"b_project": project_id, "b_evaluator": e, "b_day": d, "b_version": v} for e, d, v in claimed],
        )
    return claimed


def _midnight(day: str | date) -> datetime:
    return datetime.combine(
        date.fromisoformat(day) if isinstance(day, str) else day, time(), tzinfo=timezone.utc
    )


def _count_days(session: Session, project_id: str, days: list[Key]) -> dict[Key, Tally]:
    """The tallies of the given (evaluator, day)s from the rows: one count per run of consecutive days."""
    by_evaluator: defaultdict[str, list[date]] = defaultdict(list)
    for evaluator_type, name in days:
        by_evaluator[evaluator_type].append(date.fromisoformat(name))
    found: dict[Key, Tally] = {}
    for evaluator_type, dates in by_evaluator.items():
        dates.sort()
        runs: list[list[date]] = []
        for each in dates:
            if runs and each - runs[-1][-1] == timedelta(days=1):
                runs[-1].append(each)
            else:
                runs.append([each])
        for run in runs:
            counted = count_rows(
                session,
                project_id,
                evaluator_type=evaluator_type,
                start=_midnight(run[0]),
                end=_midnight(run[-1] + timedelta(days=1)),
            )
            for each in run:
                key = (evaluator_type, each.isoformat())
                found[key] = counted.get(key) or Tally()
    return found


def count_claimed(
    session: Session, *, project_id: str, claimed: list[Claimed]
) -> list[tuple[Claimed, dict[str, Any]]]:
    """The claimed days' tallies, counted from the rows (read-only; ``keep`` stores them)."""
    tallies = _count_days(session, project_id, [(e, d) for e, d, _ in claimed])
    return [((e, d, v), tallies[(e, d)].as_json()) for e, d, v in claimed]


def keep(session: Session, *, project_id: str, counted: list[tuple[Claimed, dict[str, Any]]]) -> None:
    """Store the tallies counted for their claims, each unless a later claim's tally is stored already."""
    if not counted:
        return
    session.execute(
        update(_TABLE)
        .where(
            _ONE_DAY,
            or_(_TABLE.c.summary_version.is_(None), _TABLE.c.summary_version < bindparam("b_version")),
        )
        .values(
            summary=bindparam("b_summary", type_=_TABLE.c.summary.type),
            summary_version=bindparam("b_version"),
            computed_at=bindparam("b_now", type_=_TABLE.c.computed_at.type),
        ),
        [
            {
                "b_project": project_id,
                "b_evaluator": e,
                "b_day": d,
                "b_version": v,
                "b_summary": summary,
                "b_now": utcnow(),
            }
            for (e, d, v), summary in counted
        ],
    )


@dataclass
class Gathered:
    """The tally of a scope, and how many of its days (or part-days) were counted from the rows for it."""

    tally: Tally
    counted_from_rows: int


def gather(
    session: Session,
    project_id: str,
    *,
    evaluator_type: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> Gathered:
    """The tally of the project's reviews made in ``[created_from, created_to)`` (of one evaluator, or all): the
    kept tallies of the whole days in it, the days whose tally is not current and the part-days at its ends
    counted from the rows."""
    created_from = _in_utc(created_from)
    created_to = _in_utc(created_to)
    if created_from is not None and created_to is not None and created_from >= created_to:
        return Gathered(Tally(), 0)
    pieces: list[Tally] = []
    part_days: list[tuple[datetime, datetime | None]] = []  # [start, end) to count from the rows
    first_whole: date | None = None
    if created_from is not None:
        first_whole = created_from.date()
        if created_from != _midnight(first_whole):
            first_whole += timedelta(days=1)
            end = _midnight(first_whole)
            part_days.append((created_from, end if created_to is None else min(end, created_to)))
    end_whole: date | None = None  # the first day not whole in scope
    if created_to is not None:
        end_whole = created_to.date()
        start = _midnight(end_whole)
        if created_to != start and (created_from is None or created_from <= start):
            part_days.append((start, created_to))
    query = select(
        AgreementDay.evaluator_type,
        AgreementDay.day,
        AgreementDay.dirty,
        AgreementDay.version,
        AgreementDay.summary_version,
        AgreementDay.summary,
    ).where(AgreementDay.project_id == project_id)
    if evaluator_type is not None:
        query = query.where(AgreementDay.evaluator_type == evaluator_type)
    if first_whole is not None:
        query = query.where(AgreementDay.day >= first_whole.isoformat())
    if end_whole is not None:
        query = query.where(AgreementDay.day < end_whole.isoformat())
    behind: list[Key] = []
    for name, day, dirty, version, summary_version, summary in session.execute(query).all():
        if dirty or summary is None or summary_version != version:
            behind.append((name, day))
        else:
            pieces.append(Tally.from_json(summary))
    pieces.extend(_count_days(session, project_id, behind).values())
    for part_start, part_end in part_days:
        counted = count_rows(
            session, project_id, evaluator_type=evaluator_type, start=part_start, end=part_end
        )
        pieces.extend(counted.values())
    return Gathered(Tally.total(pieces), len(behind) + len(part_days))


def _in_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
