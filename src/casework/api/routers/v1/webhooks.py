"""Webhook endpoints (admin keys only): register, change, rotate the secret, see deliveries, redeliver."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from casework.api.deps import Caller, Db, Reply
from casework.api.schemas.common import Cursor, Limit
from casework.api.schemas.webhooks import (
    DeliveryList,
    DeliveryPublic,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
    WebhookUpdate,
)
from casework.db.models import WebhookDelivery
from casework.services import webhooks as webhook_service
from casework.services.webhooks import endpoint_record

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


def _allow_private(request: Request) -> bool:
    return bool(request.app.state.settings.webhooks_allow_private)


@router.post("", response_model=WebhookCreated, status_code=201, summary="Register a webhook endpoint")
async def create_webhook(body: WebhookCreate, db: Db, caller: Caller, request: Request) -> Response:
    _, reply = await db.reply(
        lambda made: Reply(
            WebhookCreated.model_validate({**endpoint_record(made[0]), "secret": made[1]}), 201
        ),
        webhook_service.create_endpoint,
        principal=caller,
        box=request.app.state.secret_box,
        allow_private=_allow_private(request),
        **body.model_dump(),
    )
    return reply


@router.get("", response_model=WebhookList, summary="The workspace's webhook endpoints")
async def list_webhooks(
    db: Db, caller: Caller, project_id: Annotated[str | None, Query()] = None
) -> WebhookList:
    endpoints = await db(webhook_service.list_endpoints, principal=caller, project_id=project_id)
    return WebhookList(webhooks=[WebhookPublic.model_validate(endpoint_record(e)) for e in endpoints])


@router.get("/{webhook_id}", response_model=WebhookPublic, summary="One webhook endpoint")
async def get_webhook(webhook_id: str, db: Db, caller: Caller) -> WebhookPublic:
    endpoint = await db(webhook_service.get_endpoint, principal=caller, endpoint_id=webhook_id)
    return WebhookPublic.model_validate(endpoint_record(endpoint))


@router.patch("/{webhook_id}", response_model=WebhookPublic, summary="Change an endpoint; enable it again")
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, db: Db, caller: Caller, request: Request
) -> Response:
    _, reply = await db.reply(
        lambda endpoint: Reply(WebhookPublic.model_validate(endpoint_record(endpoint))),
        webhook_service.update_endpoint,
        principal=caller,
        endpoint_id=webhook_id,
        changes=body.model_dump(exclude_unset=True, exclude_none=True),
        allow_private=_allow_private(request),
    )
    return reply


@router.delete("/{webhook_id}", status_code=204, summary="Delete an endpoint and its deliveries")
async def delete_webhook(webhook_id: str, db: Db, caller: Caller) -> Response:
    await db(webhook_service.delete_endpoint, principal=caller, endpoint_id=webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret", response_model=SecretRotated, summary="A new signing secret (shown once)"
)
async def rotate_secret(webhook_id: str, db: Db, caller: Caller, request: Request) -> Response:
    _, reply = await db.reply(
        lambda secret: Reply(SecretRotated(secret=secret)),
        webhook_service.rotate_secret,
        principal=caller,
        endpoint_id=webhook_id,
        box=request.app.state.secret_box,
    )
    return reply


@router.post(
    "/{webhook_id}/test",
    response_model=DeliveryPublic,
    status_code=202,
    summary="Send a webhook.test message",
)
async def send_test(webhook_id: str, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(_accepted, webhook_service.send_test, principal=caller, endpoint_id=webhook_id)
    return reply


@router.get(
    "/{webhook_id}/deliveries", response_model=DeliveryList, summary="Deliveries, newest first, with attempts"
)
async def list_deliveries(
    webhook_id: str,
    db: Db,
    caller: Caller,
    status: Annotated[Literal["waiting", "pending", "succeeded", "failed"] | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryList:
    page = await db(
        webhook_service.list_deliveries,
        principal=caller,
        endpoint_id=webhook_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return DeliveryList(
        deliveries=[DeliveryPublic.model_validate(d) for d in page.deliveries], next_cursor=page.next_cursor
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryPublic,
    status_code=202,
    summary="Send a finished delivery again",
)
async def redeliver(webhook_id: str, delivery_id: str, db: Db, caller: Caller) -> Response:
    _, reply = await db.reply(
        _accepted,
        webhook_service.redeliver,
        principal=caller,
        endpoint_id=webhook_id,
        delivery_id=delivery_id,
    )
    return reply


def _accepted(delivery: WebhookDelivery) -> Reply:
    return Reply(DeliveryPublic.model_validate(webhook_service.delivery_record(delivery, [])), 202)
