"""Agreement follows the project's events: any event of a project with reports asked for lately, or with days
whose tally its decisions made out of date, queues its refresh (casework.services.agreement_reports), debounced:
one job per project and window, whichever batch of events asks first."""

from __future__ import annotations

from sqlalchemy.orm import Session

from casework.db.models import Event
from casework.services import agreement_reports
from casework.subscribers import Subscriber


def handle(session: Session, events: list[Event]) -> None:
    for project_id in dict.fromkeys(e.project_id for e in events if e.project_id is not None):
        agreement_reports.queue_refresh(session, project_id)


SUBSCRIBER = Subscriber("agreement_reports", handle)
