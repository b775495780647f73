"""Integrations (admin keys only): register, change, remove, test, see deliveries. And the one URL each tool
sends its decisions to, authenticated by the tool's own signature instead of an API key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import httpx
from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from casework.api.deps import Caller, Db, database_threads, get_database
from casework.api.schemas.integrations import (
    IntegrationCreate,
    IntegrationDeliveryList,
    IntegrationDeliveryPublic,
    IntegrationList,
    IntegrationPublic,
    IntegrationUpdate,
)
from casework.api.schemas.reviews import FeedbackCreate
from casework.db.models import Integration
from casework.integrations import kinds
from casework.integrations.base import Decision, Inbound, Outcome
from casework.services import integration_decisions, integration_log
from casework.services import integration_deliveries as delivery_service
from casework.services import integrations as integration_service

router = APIRouter(prefix="/api/v1/integrations", tags=["integrations"])
T = TypeVar("T")


def _public(request: Request, integration: Integration) -> IntegrationPublic:
    record = integration_service.integration_record(integration, request.app.state.secret_box)
    record["inbound_url"] = request.app.state.settings.effective_public_url + record.pop("inbound_path")
    return IntegrationPublic.model_validate(record)


def _allow_private(request: Request) -> bool:
    return bool(request.app.state.settings.webhooks_allow_private)


@router.post("", response_model=IntegrationPublic, status_code=201, summary="Register an integration")
async def create_integration(
    body: IntegrationCreate, db: Db, caller: Caller, request: Request
) -> IntegrationPublic:
    integration = await db(
        integration_service.create_integration,
        principal=caller,
        box=request.app.state.secret_box,
        allow_private=_allow_private(request),
        **body.model_dump(),
    )
    return _public(request, integration)


@router.get("", response_model=IntegrationList, summary="The workspace's integrations")
async def list_integrations(
    db: Db, caller: Caller, request: Request, project_id: Annotated[str | None, Query()] = None
) -> IntegrationList:
    found = await db(integration_service.list_integrations, principal=caller, project_id=project_id)
    return IntegrationList(integrations=[_public(request, i) for i in found])


@router.get("/{integration_id}", response_model=IntegrationPublic, summary="One integration")
async def get_integration(integration_id: str, db: Db, caller: Caller, request: Request) -> IntegrationPublic:
    integration = await db(
        integration_service.get_integration, principal=caller, integration_id=integration_id
    )
    return _public(request, integration)


@router.patch("/{integration_id}", response_model=IntegrationPublic, summary="Change an integration")
async def update_integration(
    integration_id: str, body: IntegrationUpdate, db: Db, caller: Caller, request: Request
) -> IntegrationPublic:
    integration = await db(
        integration_service.update_integration,
        principal=caller,
        box=request.app.state.secret_box,
        integration_id=integration_id,
        changes=body.model_dump(exclude_unset=True),
        allow_private=_allow_private(request),
    )
    return _public(request, integration)


@router.delete("/{integration_id}", status_code=204, summary="Remove an integration and its deliveries")
async def delete_integration(integration_id: str, db: Db, caller: Caller, request: Request) -> Response:
    await db(
        integration_service.delete_integration,
        principal=caller,
        box=request.app.state.secret_box,
        integration_id=integration_id,
    )
    return Response(status_code=204)


@router.post(
    "/{integration_id}/test",
    response_model=IntegrationDeliveryPublic,
    status_code=202,
    summary="Send a test message to the tool",
)
async def send_test(integration_id: str, db: Db, caller: Caller) -> IntegrationDeliveryPublic:
    delivery = await db(delivery_service.send_test, principal=caller, integration_id=integration_id)
    return IntegrationDeliveryPublic.model_validate(integration_log.delivery_record(delivery, []))


@router.get(
    "/{integration_id}/deliveries",
    response_model=IntegrationDeliveryList,
    summary="Deliveries, newest first, with every attempt",
)
async def list_deliveries(
    integration_id: str,
    db: Db,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> IntegrationDeliveryList:
    found = await db(
        integration_log.list_deliveries, principal=caller, integration_id=integration_id, limit=limit
    )
    return IntegrationDeliveryList(deliveries=[IntegrationDeliveryPublic.model_validate(d) for d in found])


# --- inbound: decisions from the tools ---------------------------------------------------------------------------


async def _in_transaction(request: Request, function: Callable[..., T], *, write: bool, **kwargs: Any) -> T:
    """An inbound request is several steps (read the integration, ask the tool who the user is, decide), each
    its own short transaction: no database transaction stays open while the tool is called."""

    def work() -> T:
        with get_database(request).transaction(write=write) as session:
            return function(session, **kwargs)

    return await to_thread.run_sync(work, limiter=database_threads(request))


def _problem(decision: Decision) -> tuple[Decision, str | None]:
    """The API's own validation of feedback (a non-empty reasoning, tags as slugs), in its words."""
    try:
        checked = FeedbackCreate.model_validate(
            {
                "classification": decision.classification or "?",
                "reasoning": decision.reasoning,
                "reviewer": decision.reviewer or "?",
                "tags": decision.tags,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return decision, f"{where}: {first['msg']}"
    return (
        Decision(
            review_id=decision.review_id,
            classification=checked.classification,
            reasoning=checked.reasoning,
            reviewer=decision.reviewer,
            tags=list(checked.tags),
            reply_to=decision.reply_to,
        ),
        None,
    )


@router.post(
    "/{integration_id}/inbound",
    summary="Decisions from the tool (Slack interactivity, Jira, ServiceNow and Zendesk webhooks)",
    description="No API key: each tool's request is authenticated by its own mechanism (Slack's signing secret "
    "with a 5-minute replay window; an HMAC or a shared secret for Jira, ServiceNow and Zendesk).",
    responses={
        400: {"description": "Not a request this tool sends."},
        401: {"description": "The tool's signature or secret is missing, wrong, or too old (a replay)."},
        404: {"description": "No such integration."},
        409: {
            "description": "The decision conflicts with the review's reviewers: a second, different decision "
            "from this integration (decision_already_submitted), or a review waiting for a lead "
            "(review_needs_adjudication). An already resolved review is answered in the tool's own terms."
        },
        503: {"description": "The database cannot serve right now: the tool retries."},
    },
)
async def inbound(integration_id: str, request: Request) -> Response:
    body = await request.body()
    target = await _in_transaction(
        request,
        integration_service.inbound_target,
        write=False,
        integration_id=integration_id,
        box=request.app.state.secret_box,
    )
    kind = kinds()[target.kind]

    async def decide(decision: Decision) -> Outcome:
        checked, problem = _problem(decision)
        return await _in_transaction(
            request,
            integration_decisions.decide,
            write=True,
            integration_id=target.integration_id,
            decision=checked,
            problem=problem,
        )

    async def linked(external_id: str) -> list[str]:
        return await _in_transaction(
            request,
            integration_decisions.review_for_external,
            write=False,
            integration_id=target.integration_id,
            external_id=external_id,
        )

    async def resolution(review_id: str) -> dict[str, Any] | None:
        return await _in_transaction(
            request,
            integration_decisions.resolution_of,
            write=False,
            integration_id=target.integration_id,
            review_id=review_id,
        )

    async def ticket_state(external_id: str, closed: bool) -> int:
        return await _in_transaction(
            request,
            integration_decisions.note_ticket_state,
            write=True,
            integration_id=target.integration_id,
            external_id=external_id,
            closed=closed,
        )

    message = Inbound(
        integration_id=target.integration_id,
        config=target.config,
        secrets=target.secrets,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        public_url=request.app.state.settings.effective_public_url,
        linked=linked,
        resolution=resolution,
        ticket_state=ticket_state,
    )
    async with httpx.AsyncClient(timeout=10, trust_env=False, follow_redirects=False) as http:
        reply = await kind.receive(message, decide, http)
    if reply.body is None:
        return Response(status_code=reply.status_code)
    return JSONResponse(reply.body, status_code=reply.status_code)
