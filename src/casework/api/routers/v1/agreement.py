"""Agreement: between reviewers on overlapped reviews, and between the judge and people. The answer is the
stored report with how stale it is; a scope asked for the first time is computed, then stored in a short write
transaction (casework.services.agreement_reports)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from casework.api.deps import Caller, Db, WriteDb
from casework.api.schemas.agreement import AgreementReport, AgreementTrend
from casework.api.schemas.common import _in_utc
from casework.services import agreement_reports

router = APIRouter(prefix="/api/v1", tags=["agreement"])

From = Annotated[
    datetime | None,
    Query(alias="from", description="Reviews created at or after (ISO 8601; UTC when no zone)."),
    AfterValidator(_in_utc),
]
To = Annotated[
    datetime | None,
    Query(alias="to", description="Reviews created before (ISO 8601; UTC when no zone)."),
    AfterValidator(_in_utc),
]


@router.get(
    "/projects/{project_id}/agreement",
    response_model=AgreementReport,
    summary="Inter-reviewer agreement (kappas, alpha, with intervals) and judge-vs-human agreement",
)
async def project_agreement(
    project_id: str,
    db: Db,
    write_db: WriteDb,
    caller: Caller,
    evaluator_type: Annotated[str | None, Query()] = None,
    created_from: From = None,
    created_to: To = None,
    pairs: Annotated[
        bool, Query(description="false: skip Cohen's kappa per pair of reviewers (for a crowd of raters).")
    ] = True,
) -> AgreementReport:
    scope = agreement_reports.Scope(
        "report",
        evaluator_type=evaluator_type or None,
        created_from=created_from,
        created_to=created_to,
        pairs=pairs,
    )
    return AgreementReport.model_validate(await _serve(db, write_db, caller, project_id, scope))


@router.get(
    "/projects/{project_id}/agreement/trend",
    response_model=AgreementTrend,
    summary="Agreement over time: inter-reviewer alpha and judge-vs-human accuracy and kappa per bucket",
)
async def agreement_trend(
    project_id: str,
    db: Db,
    write_db: WriteDb,
    caller: Caller,
    evaluator_type: Annotated[str | None, Query()] = None,
    created_from: From = None,
    created_to: To = None,
    bucket: Annotated[Literal["day", "week", "month"], Query()] = "week",
) -> AgreementTrend:
    scope = agreement_reports.Scope(
        "trend",
        evaluator_type=evaluator_type or None,
        created_from=created_from,
        created_to=created_to,
        bucket=bucket,
    )
    return AgreementTrend.model_validate(await _serve(db, write_db, caller, project_id, scope))


async def _serve(
    db: Db, write_db: WriteDb, caller: Caller, project_id: str, scope: agreement_reports.Scope
) -> dict[str, Any]:
    """The stored answer for the scope (a read); stored or marked asked-for afterwards, in a short write."""
    served = await db(agreement_reports.serve, principal=caller, project_id=project_id, scope=scope)
    if served.to_store is not None or served.mark_requested:
        await write_db(agreement_reports.keep, project_id=project_id, served=served)
    return served.answer
