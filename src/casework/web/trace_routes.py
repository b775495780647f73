"""The web UI for engineers: traces, span waterfalls, sessions, evaluations and what the judge was sent."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from casework.api.deps import Db
from casework.services import trace_pages
from casework.web.common import Viewer, render

router = APIRouter(include_in_schema=False)


@router.get("/projects/{project_id}/traces")
async def traces(
    request: Request,
    db: Db,
    caller: Viewer,
    project_id: str,
    run: str = "",
    session: Annotated[str, Query(max_length=200)] = "",
    errors: str = "",
    min_ms: Annotated[str, Query(pattern=r"^\d{0,9}$")] = "",
    cursor: str | None = None,
) -> Response:
    filters = trace_pages.TraceFilters(
        run_id=run or None,
        session_id=session or None,
        errors_only=bool(errors),
        min_duration_ms=float(min_ms) if min_ms else None,
    )
    page = await db(
        trace_pages.traces_page,
        principal=caller.principal,
        project_id=project_id,
        filters=filters,
        cursor=cursor,
    )
    chosen: dict[str, Any] = {"run": run, "session": session, "errors": errors, "min_ms": min_ms}
    more = f"?{urlencode({**chosen, 'cursor': page.next_cursor})}" if page.next_cursor else None
    return render(
        request,
        "traces.html",
        caller=caller,
        page=page,
        project=page.project,
        more=more,
        run=run,
        session_id=session,
        errors=errors,
        min_ms=min_ms,
    )


@router.get("/projects/{project_id}/traces/{trace_id}")
async def trace(request: Request, db: Db, caller: Viewer, project_id: str, trace_id: str) -> Response:
    page = await db(
        trace_pages.trace_page, principal=caller.principal, project_id=project_id, trace_id=trace_id
    )
    return render(request, "trace.html", caller=caller, page=page, project=page.project)


@router.get("/projects/{project_id}/sessions/{session_id:path}")
async def conversation(
    request: Request, db: Db, caller: Viewer, project_id: str, session_id: str
) -> Response:
    page = await db(
        trace_pages.session_page, principal=caller.principal, project_id=project_id, session_id=session_id
    )
    return render(request, "session.html", caller=caller, page=page, project=page.project)


def _yes_no(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


@router.get("/projects/{project_id}/evaluations")
async def evaluations(
    request: Request,
    db: Db,
    caller: Viewer,
    project_id: str,
    evaluator: str = "",
    classification: str = "",
    ambiguous: Annotated[str, Query(pattern="^(|yes|no)$")] = "",
    reevaluated: Annotated[str, Query(pattern="^(|yes|no)$")] = "",
    run: str = "",
    cursor: str | None = None,
) -> Response:
    filters = trace_pages.EvaluationFilters(
        evaluator_type=evaluator or None,
        classification=classification or None,
        ambiguous=_yes_no(ambiguous),
        reevaluated=_yes_no(reevaluated),
        run_id=run or None,
    )
    page = await db(
        trace_pages.evaluations_page,
        principal=caller.principal,
        project_id=project_id,
        filters=filters,
        cursor=cursor,
    )
    chosen: dict[str, Any] = {
        "evaluator": evaluator,
        "classification": classification,
        "ambiguous": ambiguous,
        "reevaluated": reevaluated,
        "run": run,
    }
    more = f"?{urlencode({**chosen, 'cursor': page.next_cursor})}" if page.next_cursor else None
    return render(
        request, "evaluations.html", caller=caller, page=page, project=page.project, more=more, **chosen
    )


@router.get("/evaluations/{evaluation_id}")
async def evaluation(request: Request, db: Db, caller: Viewer, evaluation_id: str) -> Response:
    page = await db(trace_pages.evaluation_page, principal=caller.principal, evaluation_id=evaluation_id)
    return render(request, "evaluation.html", caller=caller, page=page, project=page.project)
