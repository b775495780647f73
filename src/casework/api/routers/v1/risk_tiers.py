"""Risk tiers: a project's tiers and rules, trying them on one interaction or on past evaluations, and what
they did."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from casework.api.deps import Caller, Db, Reply
from casework.api.schemas.risk_tiers import (
    DryRunIn,
    DryRunPublic,
    ImpactIn,
    ImpactPublic,
    RiskPolicyIn,
    RiskPolicyPublic,
    RiskReportPublic,
)
from casework.services import risk_tiers

router = APIRouter(prefix="/api/v1/risk-tiers", tags=["risk tiers"])


@router.get("", response_model=RiskPolicyPublic, summary="A project's risk tiers and rules")
async def get_policy(db: Db, caller: Caller, project_id: Annotated[str, Query()]) -> RiskPolicyPublic:
    return RiskPolicyPublic.model_validate(
        await db(risk_tiers.get_policy, principal=caller, project_id=project_id)
    )


@router.put("", response_model=RiskPolicyPublic, summary="Replace a project's risk tiers and rules (admin)")
async def put_policy(
    body: RiskPolicyIn, db: Db, caller: Caller, project_id: Annotated[str, Query()]
) -> Response:
    _, reply = await db.reply(
        lambda record: Reply(RiskPolicyPublic.model_validate(record)),
        risk_tiers.put_policy,
        principal=caller,
        project_id=project_id,
        document=body.model_dump(mode="json"),
    )
    return reply


@router.post("/dry-run", response_model=DryRunPublic, summary="Which tier an interaction would get, and why")
async def dry_run(body: DryRunIn, request: Request, db: Db, caller: Caller) -> DryRunPublic:
    facts = body.interaction
    found = await db(
        risk_tiers.dry_run,
        principal=caller,
        project_id=body.project_id,
        facts=risk_tiers.Facts(
            evaluator=facts.evaluator,
            classification=facts.classification,
            confidence=facts.confidence,
            ambiguous=facts.ambiguous,
            metadata=facts.metadata or {},
            control_tags=facts.control_tags,
            run=facts.run,
            run_id=facts.run_id,
        ),
        document=body.policy.model_dump(mode="json") if body.policy else None,
        default_spot_check_rate=request.app.state.settings.spot_check_rate,
    )
    return DryRunPublic.model_validate(found)


@router.post(
    "/impact",
    response_model=ImpactPublic,
    summary="What a policy would have sent to people over the last days' evaluations",
)
async def impact(body: ImpactIn, request: Request, db: Db, caller: Caller) -> ImpactPublic:
    found = await db(
        risk_tiers.impact,
        principal=caller,
        project_id=body.project_id,
        document=body.policy.model_dump(mode="json") if body.policy else None,
        days=body.days,
        default_spot_check_rate=request.app.state.settings.spot_check_rate,
    )
    return ImpactPublic.model_validate(found)


@router.get(
    "/report", response_model=RiskReportPublic, summary="Per tier: what went to people, and its error"
)
async def report(
    db: Db,
    caller: Caller,
    project_id: Annotated[str, Query()],
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> RiskReportPublic:
    return RiskReportPublic.model_validate(
        await db(risk_tiers.report, principal=caller, project_id=project_id, days=days)
    )
