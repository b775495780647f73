"""Agreement reports kept in the database: what the agreement endpoints serve, refreshed in the background.

A report is computed from the tallies of its days (casework.services.agreement_days): tens of milliseconds for a
scope nobody asked for before, plus its statistics, whatever the number of reviews. In a live project decisions
keep arriving, so each report a lead asks for (one per scope: evaluator, dates, options) is stored with the time
of the data it was computed from (``as_of``) and the project's marker then (the position of its latest event in
the log), and a request answers the stored one at once. After the project's events a debounced job (one per due
time: its dedupe key names the window it is due at, the end of the current ``REFRESH_SECONDS`` window, or later
when the last refresh was costly) first counts again the days those events changed (and any day not yet
counted: a project with people's decisions gets its day tallies whether or not anyone asked for a report yet, so
a lead's first question is answered from them), then recomputes the reports asked for lately and keeps each one
only when it is newer than the one stored, so any number of API and worker processes may compute and store at
once. A request reads one row and the marker: it answers the stored report with its ``as_of``, whether events
came after it (``stale``) and how many (``events_since``, counting events committed but not yet given a
position); only a scope asked for the first time is computed on request, from the kept day tallies and its
part-days (and any day changed since the last refresh) counted from the rows.

The marker is the position of the project's latest event, not its sequence number: on PostgreSQL a sequence
number is taken before its transaction commits, so a change can become visible under a number lower than the
latest, whereas a position is given after the commit and never goes back (casework.db.outbox). An event not yet
given one was committed before any later read, so a report never misses data its marker says it has; at worst
it is refreshed once more than needed. Reading it is one step down an index, however long the log.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import AgreementReport, Event
from casework.db.types import utcnow
from casework.services import agreement, agreement_days
from casework.services.auth import Principal
from casework.services.jobs import queue_job
from casework.services.projects import get_project

REFRESH = "agreement.refresh"
# The debounce: events within one window of this many seconds make one refresh, at the window's end; and a
# project's refreshes start at least twice their last cost apart (so a project whose reports take 10 s to
# compute spends at most half of a worker's time on them).
REFRESH_SECONDS = 15.0
# A stored report asked for within this long is refreshed after new events; one not asked for since is left
# as it is, answered stale, and refreshed once asked for again.
KEEP_REFRESHING = timedelta(hours=1)
# A request marks the report asked for (a short write) at most this often: which reports a refresh takes
# first is known to this precision.
MARK_REQUESTED_EVERY = timedelta(seconds=30)
# The most reports one refresh recomputes (the most recently asked for first): a lead trying many date ranges
# does not make every later refresh recompute them all.
MAX_REFRESHED = 12

Kind = Literal["report", "trend"]


@dataclass(frozen=True)
class Scope:
    """What a report is computed over: the report or the trend, an evaluator, reviews' creation dates, and
    the report's pairs or the trend's bucket."""

    kind: Kind
    evaluator_type: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    pairs: bool = True
    bucket: agreement.Bucket = "week"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "evaluator_type": self.evaluator_type,
            "from": self.created_from.isoformat() if self.created_from else None,
            "to": self.created_to.isoformat() if self.created_to else None,
            "pairs": self.pairs if self.kind == "report" else None,
            "bucket": self.bucket if self.kind == "trend" else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Scope:
        return cls(
            kind=value["kind"],
            evaluator_type=value["evaluator_type"],
            created_from=datetime.fromisoformat(value["from"]) if value["from"] else None,
            created_to=datetime.fromisoformat(value["to"]) if value["to"] else None,
            pairs=bool(value["pairs"]) if value["pairs"] is not None else True,
            bucket=value["bucket"] or "week",
        )

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Computed:
    """A report and what it was computed from."""

    report: dict[str, Any]
    as_of: datetime
    event_position: int | None
    seconds: float


@dataclass
class Served:
    """What a request answers, and what it leaves for a short write transaction: a report computed on
    request to store, or a stored one to mark asked for."""

    answer: dict[str, Any]
    scope: Scope
    to_store: Computed | None = None
    mark_requested: bool = False


def marker(session: Session, project_id: str) -> int | None:
    """The position of the project's latest event in the log (None: none yet)."""
    latest: int | None = session.execute(
        select(func.max(Event.position)).where(Event.project_id == project_id)
    ).scalar_one()
    return latest


def events_after(session: Session, project_id: str, position: int | None) -> int:
    """How many of the project's events came after ``position`` in the log."""
    query = select(func.count()).where(Event.project_id == project_id, Event.position.is_not(None))
    if position is not None:
        query = query.where(Event.position > position)
    return int(session.execute(query).scalar_one())


def unsequenced_events(session: Session, project_id: str) -> int:
    """How many of the project's committed events wait for a position (a few at most, for a moment; the
    partial index on unsequenced events makes this one short read)."""
    query = select(func.count()).where(Event.project_id == project_id, Event.position.is_(None))
    return int(session.execute(query).scalar_one())


def compute(session: Session, project_id: str, scope: Scope) -> Computed:
    """The report of ``scope`` from the data now; the marker and the time are read before the data, so the
    report is never older than they say."""
    started = time.perf_counter()
    as_of = utcnow()
    position = marker(session, project_id)
    if scope.kind == "report":
        report = agreement.compute_report(
            session,
            project_id=project_id,
            evaluator_type=scope.evaluator_type,
            created_from=scope.created_from,
            created_to=scope.created_to,
            pairs=scope.pairs,
        )
    else:
        report = agreement.compute_trend(
            session,
            project_id=project_id,
            evaluator_type=scope.evaluator_type,
            created_from=scope.created_from,
            created_to=scope.created_to,
            bucket=scope.bucket,
        )
    return Computed(report, as_of, position, time.perf_counter() - started)


class _Recent:
    """Reports computed on request in this process, keyed by scope and marker: two requests for a new scope
    at once (or one whose store lost a race) compute it once."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._computed: OrderedDict[tuple[str, str, int | None], Computed] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int | None]) -> Computed | None:
        with self._lock:
            if key in self._computed:
                self._computed.move_to_end(key)
            return self._computed.get(key)

    def put(self, key: tuple[str, str, int | None], computed: Computed) -> None:
        with self._lock:
            self._computed[key] = computed
            while len(self._computed) > self._size:
                self._computed.popitem(last=False)


_computed_here = _Recent(32)


def _answer(report: dict[str, Any], *, as_of: datetime, events_since: int) -> dict[str, Any]:
    return {**report, "as_of": as_of, "stale": events_since > 0, "events_since": events_since}


def serve(session: Session, *, principal: Principal, project_id: str, scope: Scope) -> Served:
    """The stored report of ``scope`` with how stale it is; computed now when none is stored (read-only: what
    to write comes back in ``Served``, for :func:`keep`)."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    stored = session.get(AgreementReport, (project_id, scope.key))
    position = marker(session, project_id)
    if stored is None:
        key = (project_id, scope.key, position)
        computed = _computed_here.get(key)
        if computed is None:
            computed = compute(session, project_id, scope)
            _computed_here.put(key, computed)
        return Served(
            _answer(computed.report, as_of=computed.as_of, events_since=0), scope, to_store=computed
        )
    # An event committed but not yet sequenced is newer than any marker: counted, so a change is stale at once.
    events_since = unsequenced_events(session, project_id) + (
        events_after(session, project_id, stored.event_position) if position != stored.event_position else 0
    )
    return Served(
        _answer(stored.report, as_of=stored.as_of, events_since=events_since),
        scope,
        mark_requested=stored.requested_at < utcnow() - MARK_REQUESTED_EVERY,
    )


def keep(session: Session, *, project_id: str, served: Served) -> None:
    """Store a report computed on request (unless a newer one is stored meanwhile), or mark a stored one asked
    for; a stale one asked for again after a while is queued for a refresh, and so is the project when the
    report read days without a current tally (after an upgrade: the days counted before this version)."""
    if served.to_store is not None:
        store(session, project_id=project_id, scope=served.scope, computed=served.to_store, requested=True)
        if agreement_days.needs_refresh(session, project_id):
            queue_refresh(session, project_id)
    elif served.mark_requested:
        session.execute(
            update(AgreementReport)
            .where(AgreementReport.project_id == project_id, AgreementReport.scope_key == served.scope.key)
            .values(requested_at=utcnow())
        )
        if served.answer["stale"]:
            queue_refresh(session, project_id)


def store(session: Session, *, project_id: str, scope: Scope, computed: Computed, requested: bool) -> bool:
    """Keep ``computed`` as the stored report of ``scope`` when it is newer than the stored one (True)."""
    values = {
        "report": computed.report,
        "as_of": computed.as_of,
        "event_position": computed.event_position,
        "computed_seconds": computed.seconds,
    }
    now = utcnow()
    if insert_ignoring_conflict(
        session,
        AgreementReport,
        {
            "project_id": project_id,
            "scope_key": scope.key,
            "scope": scope.as_json(),
            "requested_at": now,
            **values,
        },
        conflict_columns=["project_id", "scope_key"],
    ):
        return True
    result = session.execute(
        update(AgreementReport)
        .where(
            AgreementReport.project_id == project_id,
            AgreementReport.scope_key == scope.key,
            AgreementReport.as_of < computed.as_of,
        )
        .values(**values, **({"requested_at": now} if requested else {}))
    )
    return bool(getattr(result, "rowcount", 0))


def _asked_lately(project_id: str) -> Any:
    return (AgreementReport.project_id == project_id) & (
        AgreementReport.requested_at >= utcnow() - KEEP_REFRESHING
    )


def queue_refresh(session: Session, project_id: str) -> bool:
    """Queue the project's refresh, when it has reports asked for lately or days whose tally is not current: due
    at the end of the current window, or later when its last refresh was costly (one job per due time, whoever
    asks)."""
    latest, cost = session.execute(
        select(func.max(AgreementReport.as_of), func.sum(AgreementReport.computed_seconds)).where(
            _asked_lately(project_id)
        )
    ).one()
    if latest is None and not agreement_days.needs_refresh(session, project_id):
        return False
    now = utcnow().timestamp()
    earliest = now if latest is None else max(now, latest.timestamp() + 2 * float(cost or 0.0))
    window = math.floor(earliest / REFRESH_SECONDS) + 1
    return queue_job(
        session,
        kind=REFRESH,
        project_id=project_id,
        dedupe_key=f"{REFRESH}:{project_id}:{window}",
        available_at=datetime.fromtimestamp(window * REFRESH_SECONDS, timezone.utc),
    )


def refresh_scope(session: Session, *, project_id: str, scope: Scope) -> Computed:
    """Recompute one stored report (read-only; :func:`store` keeps it)."""
    return compute(session, project_id, scope)


def to_refresh(session: Session, *, project_id: str) -> list[Scope]:
    """The project's stored reports asked for lately whose data changed since, the most recently asked first."""
    position = marker(session, project_id)
    rows = session.execute(
        select(AgreementReport.scope, AgreementReport.event_position)
        .where(_asked_lately(project_id))
        .order_by(AgreementReport.requested_at.desc())
        .limit(MAX_REFRESHED)
    ).all()
    return [Scope.from_json(scope) for scope, stored in rows if stored != position]
