"""SLA policies, the SLA report and trends of a project (JSON, or CSV for spreadsheets and Power BI)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from casework.api.deps import Caller, Db, Reply
from casework.api.schemas.sla import SlaPolicyPublic, SlaPolicyUpdate, SlaReport, TrendBucket, Trends
from casework.services import sla as sla_service
from casework.services import sla_reports

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["sla"])

Format = Annotated[
    Literal["json", "csv"] | None,
    Query(description="json (the default) or csv; `Accept: text/csv` asks for CSV too."),
]
_CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON, or CSV"}}


def _wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _csv(rows: Iterable[dict[str, Any]], filename: str) -> Response:
    rows = list(rows)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/sla", response_model=SlaPolicyPublic, summary="A project's SLA policy and queue thresholds")
async def get_policy(project_id: str, db: Db, caller: Caller) -> SlaPolicyPublic:
    document = await db(sla_service.get_policy, workspace_id=caller.workspace_id, project_id=project_id)
    return SlaPolicyPublic.model_validate(document)


@router.put(
    "/sla", response_model=SlaPolicyPublic, summary="Replace a project's SLA policy and queue thresholds"
)
async def put_policy(project_id: str, body: SlaPolicyUpdate, db: Db, caller: Caller) -> Response:
    caller.require_write()
    _, reply = await db.reply(
        lambda document: Reply(SlaPolicyPublic.model_validate(document)),
        sla_service.set_policy,
        workspace_id=caller.workspace_id,
        project_id=project_id,
        target_hours=body.target_hours,
        warning_at=body.warning_at,
        escalation_contact=body.escalation_contact,
        pause_when_waiting=body.pause_when_waiting,
        evaluators={name: o.model_dump(exclude_none=True) for name, o in body.evaluators.items()},
        pending_count_threshold=body.queue_thresholds.pending_count,
        oldest_pending_hours_threshold=body.queue_thresholds.oldest_pending_hours,
    )
    return reply


@router.get(
    "/sla-report",
    response_model=SlaReport,
    summary="Breach rate and time to decision by evaluator and reviewer; what is overdue now",
    responses=_CSV,  # type: ignore[arg-type]
)
async def sla_report(
    project_id: str,
    request: Request,
    db: Db,
    caller: Caller,
    since: Annotated[
        date | None, Query(alias="from", description="First day (UTC); default 30 days ago.")
    ] = None,
    until: Annotated[
        date | None, Query(alias="to", description="Last day (UTC), included; default today.")
    ] = None,
    format: Format = None,
) -> Any:
    document = await db(
        sla_reports.sla_report,
        workspace_id=caller.workspace_id,
        project_id=project_id,
        since=since,
        until=until,
    )
    report = SlaReport.model_validate(document)
    if not _wants_csv(request, format):
        return report
    rows = [{"scope": "overall", "name": "", **report.overall.model_dump()}]
    rows += [{"scope": "evaluator", "name": k, **v.model_dump()} for k, v in report.by_evaluator.items()]
    rows += [{"scope": "reviewer", "name": k, **v.model_dump()} for k, v in report.by_reviewer.items()]
    return _csv(rows, f"sla-report-{project_id}-{report.since}-{report.until}.csv")


@router.get(
    "/trends",
    response_model=Trends,
    summary="Per day or week: evaluations, ambiguity, reviews, decisions, time to decision, breaches",
    responses=_CSV,  # type: ignore[arg-type]
)
async def trends(
    project_id: str,
    request: Request,
    db: Db,
    caller: Caller,
    first_day: Annotated[
        date | None, Query(alias="from", description="First day (UTC); default 30 days ago.")
    ] = None,
    last_day: Annotated[
        date | None, Query(alias="to", description="Last day (UTC), included; default today.")
    ] = None,
    bucket: Annotated[Literal["day", "week"], Query(description="day, or week (from Monday).")] = "day",
    evaluator_type: Annotated[str | None, Query(description="One evaluator's series only.")] = None,
    format: Format = None,
) -> Any:
    document = await db(
        sla_reports.trends,
        workspace_id=caller.workspace_id,
        project_id=project_id,
        first_day=first_day,
        last_day=last_day,
        bucket=bucket,
        evaluator_type=evaluator_type,
    )
    result = Trends.model_validate(document)
    if not _wants_csv(request, format):
        return result
    return _csv((_flat(row) for row in result.buckets), f"trends-{project_id}-{bucket}.csv")


def _flat(bucket: TrendBucket) -> dict[str, Any]:
    """A trend bucket as one CSV row: each evaluator's ambiguity rate in a column of its own."""
    row = bucket.model_dump(exclude={"by_evaluator"})
    for name, found in bucket.by_evaluator.items():
        row[f"ambiguity_rate:{name}"] = found.ambiguity_rate
    return row
