"""Webhooks: a subscriber that turns events into deliveries, and the job that sends an endpoint's deliveries.

Messages follow the Standard Webhooks specification (https://www.standardwebhooks.com): headers
``webhook-id`` (the event id: the same on every retry, so receivers can de-duplicate), ``webhook-timestamp``
and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, signed with the reference library
``standardwebhooks``; two signatures for a day after a secret rotation); body ``{"type", "timestamp", "data"}``.

Sending never blocks the request that caused the event, and never the evaluation worker: each endpoint's
sender runs in the worker's ``deliver`` lane, with its own slots and a timeout. The receiver's host is resolved at each attempt
and the request goes to the address that was checked (no second lookup an attacker could answer differently).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from casework import __version__
from casework.db.models import Event
from casework.secrets import SecretBox
from casework.services import webhooks as webhook_service
from casework.services.jobs import ClaimedJob
from casework.subscribers import Subscriber
from casework.worker.kinds import JobKind

EXCERPT_BYTES = 1000
logger = logging.getLogger("casework.webhooks")


def handle(session: Session, events: list[Event]) -> None:
    webhook_service.create_deliveries(session, events)


SUBSCRIBER = Subscriber(name="webhooks", handle=handle)


def sign(secrets: list[str], *, message_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,...`` signature per secret, space-separated."""
    text = body.decode()
    return " ".join(Webhook(secret).sign(message_id, timestamp, text) for secret in secrets)


class WebhookSender:
    """Sends an endpoint's deliveries, a batch at a time, in the job that is that endpoint's sender: the batch
    read in one query, sent over one connection pool (up to ``concurrency`` requests at once), and recorded in
    one transaction. Per delivery, a job of its own (queued, claimed, finished) and its reads and writes cost
    more CPU than sending it (bench/events.py)."""

    # A sender that always has more to send gives its slot up after this long, so that every endpoint's
    # sender gets its turn when there are more endpoints than slots.
    SLICE_SECONDS = 5.0

    def __init__(
        self,
        db: Any,
        box: SecretBox,
        *,
        retry_delays: tuple[float, ...],
        disable_after: int,
        timeout_seconds: float,
        allow_private: bool,
        concurrency: int = 16,
    ) -> None:
        self._db = db
        self.box = box
        self.retry_delays = retry_delays
        self.disable_after = disable_after
        self.allow_private = allow_private
        self._concurrency = concurrency
        self.client = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": f"Casework-Webhooks/{__version__}"},
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=concurrency * 4),
        )

    def kind(self) -> JobKind:
        return JobKind(webhook_service.DELIVER, self.deliver, lane="deliver", finishes_itself=True)

    def retry_delay(self, attempt: int) -> float:
        """Seconds before the retry after failed attempt number ``attempt``: the schedule, plus up to a fifth
        at random, so that the retries of many deliveries do not arrive together."""
        return JobKind("retry", self.deliver, retry_delays=self.retry_delays, jitter=0.2).delay_before(
            attempt
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def deliver(self, job: ClaimedJob) -> None:
        if "endpoint_id" not in job.payload:  # queued by an earlier version, for one delivery
            await self._db(webhook_service.wake_sender_of, write=True, claimed=job)
            return
        endpoint_id = str(job.payload["endpoint_id"])
        slots = asyncio.Semaphore(self._concurrency)

        async def send(message: webhook_service.Outgoing) -> tuple[str, webhook_service.AttemptResult]:
            async with slots:
                try:
                    return message.delivery_id, await self._send(message)
                except Exception as exc:  # whatever the URL or the network did, it is this attempt's failure
                    logger.exception("sending delivery %s failed", message.delivery_id)
                    error = f"{type(exc).__name__}: {exc}"
                    return message.delivery_id, webhook_service.AttemptResult(None, 0.0, None, error)

        started = time.monotonic()
        while True:
            batch = await self._db(webhook_service.due, write=False, endpoint_id=endpoint_id, box=self.box)
            sent = await asyncio.gather(*(send(message) for message in batch))
            outcome = await self._db(
                webhook_service.settle,
                write=True,
                claimed=job,
                endpoint_id=endpoint_id,
                sent=sent,
                retry_delay=self.retry_delay,
                max_attempts=len(self.retry_delays) + 1,
                disable_after=self.disable_after,
                yield_now=time.monotonic() - started > self.SLICE_SECONDS,
            )
            if outcome != "more":
                return

    async def _send(self, message: webhook_service.Outgoing) -> webhook_service.AttemptResult:
        started = time.perf_counter()

        def failed(
            error: str, status: int | None = None, excerpt: str | None = None
        ) -> webhook_service.AttemptResult:
            return webhook_service.AttemptResult(
                status, (time.perf_counter() - started) * 1000, excerpt, error
            )

        parts = urlsplit(message.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = await self._address(host, port)
        except OSError as exc:
            return failed(f"could not resolve {host}: {exc}")
        if address is None:
            return failed(
                f"{host} resolves only to private, loopback or link-local addresses: refused "
                "(CASEWORK_WEBHOOKS_ALLOW_PRIVATE allows them)"
            )
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        timestamp = datetime.now(timezone.utc)
        headers = {
            "host": parts.netloc.rpartition("@")[2],
            "content-type": "application/json",
            "webhook-id": message.event_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": sign(
                message.secrets, message_id=message.event_id, timestamp=timestamp, body=message.body
            ),
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            request = self.client.build_request(
                "POST", target, content=message.body, headers=headers, extensions=extensions
            )
            response = await self.client.send(request, stream=True)
            try:
                excerpt = await _excerpt(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return failed("the receiver did not answer in time")
        except httpx.HTTPError as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        result = webhook_service.AttemptResult(
            response.status_code, (time.perf_counter() - started) * 1000, excerpt, None
        )
        if not result.succeeded:
            return failed(f"the receiver answered {response.status_code}", response.status_code, excerpt)
        return result

    async def _address(self, host: str, port: int) -> str | None:
        """The first address of ``host`` that may be called, or None."""
        try:
            ipaddress.ip_address(host)
            candidates = [host]
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            candidates = [str(info[4][0]) for info in infos]
        for candidate in candidates:
            if webhook_service.address_allowed(candidate, allow_private=self.allow_private):
                return candidate
        return None


async def _excerpt(response: httpx.Response) -> str:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= EXCERPT_BYTES:
            break
    return data[:EXCERPT_BYTES].decode("utf-8", errors="replace")
