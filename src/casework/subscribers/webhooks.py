"""Webhooks: a subscriber that turns events into deliveries, and the job that sends one.

Messages follow the Standard Webhooks specification (https://www.standardwebhooks.com): headers
``webhook-id`` (the event id: the same on every retry, so receivers can de-duplicate), ``webhook-timestamp``
and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, signed with the reference library
``standardwebhooks``; two signatures for a day after a secret rotation); body ``{"type", "timestamp", "data"}``.

Sending never blocks the request that caused the event, and never the evaluation worker: it runs in the
worker's ``deliver`` lane, with its own slots and a timeout. The receiver's host is resolved at each attempt
and the request goes to the address that was checked (no second lookup an attacker could answer differently).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from casework import __version__
from casework.db.group_commit import Batched, GroupCommit
from casework.db.models import Event
from casework.db.types import utcnow
from casework.secrets import SecretBox
from casework.services import webhooks as webhook_service
from casework.services.jobs import ClaimedJob
from casework.subscribers import Subscriber
from casework.worker.kinds import JobKind, Retry

EXCERPT_BYTES = 1000


def handle(session: Session, events: list[Event]) -> None:
    webhook_service.create_deliveries(session, events)


SUBSCRIBER = Subscriber(name="webhooks", handle=handle)


def sign(secrets: list[str], *, message_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,...`` signature per secret, space-separated."""
    text = body.decode()
    return " ".join(Webhook(secret).sign(message_id, timestamp, text) for secret in secrets)


class WebhookSender:
    """Sends one delivery per job, with its own HTTP connection pool."""

    def __init__(
        self,
        db: Any,
        writes: GroupCommit,
        box: SecretBox,
        *,
        retry_delays: tuple[float, ...],
        disable_after: int,
        timeout_seconds: float,
        allow_private: bool,
    ) -> None:
        self._db = db
        # Each delivery ends in a small write (the attempt, the delivery settled, its job finished). On SQLite
        # every commit waits for the disk, so deliveries sent at once share one commit: one commit each capped
        # delivery at the disk's commits per second, shared with the API (bench/events.py).
        self._writes = writes
        # The deliveries sent at once are read together and recorded together (a few statements per batch):
        # per delivery, the reads and writes cost more CPU than sending it (bench/events.py).
        self._messages: Batched[str, webhook_service.Outgoing | None] = Batched(
            writes.database,
            writes.limiter,
            lambda session, ids: list(webhook_service.outgoing(session, delivery_ids=ids, box=box).values()),
            write=False,
        )
        self._attempts: Batched[webhook_service.Attempt, str] = Batched(
            writes.database,
            writes.limiter,
            lambda session, attempts: webhook_service.record_attempts(
                session, attempts=attempts, disable_after=disable_after
            ),
            write=True,
        )
        self.box = box
        self.retry_delays = retry_delays
        self.disable_after = disable_after
        self.allow_private = allow_private
        self.client = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": f"Casework-Webhooks/{__version__}"},
        )

    def kind(self) -> JobKind:
        return JobKind(
            webhook_service.DELIVER,
            self.deliver,
            lane="deliver",
            retry_delays=self.retry_delays,
            jitter=0.2,
            finishes_itself=True,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def deliver(self, job: ClaimedJob) -> None:
        delivery_id = str(job.payload["delivery_id"])
        message = await self._messages.call(delivery_id)
        if message is None:
            await self._writes.write(webhook_service.not_sendable, claimed=job, delivery_id=delivery_id)
            return
        result = await self._send(message)
        last = job.attempts >= len(self.retry_delays) + 1
        outcome = await self._attempts.call(webhook_service.Attempt(job, delivery_id, result, last))
        if outcome == "retry":
            delay = self.kind().delay_before(job.attempts)
            await self._db(
                webhook_service.note_next_attempt,
                write=True,
                delivery_id=delivery_id,
                at=utcnow() + timedelta(seconds=delay),
            )
            raise Retry(result.error or f"the receiver answered {result.status_code}", after=delay)

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
