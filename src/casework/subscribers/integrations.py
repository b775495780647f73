"""Integrations: a subscriber that turns review events into deliveries for every integration that wants them,
and the jobs that send them (the ``deliver`` lane, beside webhooks) and queue the daily digests.

Each delivery is one call (or a short sequence of calls) to the tool's API, retried on the webhook schedule
(``CASEWORK_WEBHOOK_RETRY_SCHEDULE``) while the tool answers 408, 429 or 5xx or cannot be reached; a tool that
refuses the request as such (400, 401, 404) fails the delivery at once, with the tool's own words kept.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import httpx

from casework import __version__
from casework.db.models import Event
from casework.db.types import utcnow
from casework.integrations import kinds
from casework.integrations.base import Kind, Sent, Stopwatch, failed, scrubbed
from casework.secrets import SecretBox
from casework.services import integration_deliveries as delivery_service
from casework.services.jobs import ClaimedJob, finish_job
from casework.subscribers import Subscriber
from casework.worker.kinds import JobKind, Retry

logger = logging.getLogger("casework.integrations")


def handle(session: Any, events: list[Event]) -> None:
    delivery_service.create_deliveries(session, events)


SUBSCRIBER = Subscriber(name="integrations", handle=handle, types=frozenset(delivery_service.ACTIONS))


class IntegrationSender:
    """Sends one delivery per job, with one HTTP connection pool for every tool but Slack (whose SDK brings
    its own)."""

    def __init__(
        self,
        db: Any,
        box: SecretBox,
        *,
        public_url: str,
        retry_delays: tuple[float, ...],
        timeout_seconds: float,
        registry: dict[str, Kind] | None = None,
    ) -> None:
        self._db = db
        self.box = box
        self.public_url = public_url.rstrip("/")
        self.retry_delays = retry_delays
        self.kinds = registry or kinds()
        self.http = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": f"Casework/{__version__}"},
        )

    def job_kinds(self) -> list[JobKind]:
        return [self._deliver_kind, JobKind(delivery_service.DIGEST, self.queue_digests)]

    @property
    def _deliver_kind(self) -> JobKind:
        return JobKind(
            delivery_service.DELIVER,
            self.deliver,
            lane="deliver",
            retry_delays=self.retry_delays,
            jitter=0.2,
            finishes_itself=True,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def queue_digests(self, job: ClaimedJob) -> None:
        await self._db(delivery_service.queue_digests, write=True, tick=float(job.payload.get("tick", 0)))

    async def deliver(self, job: ClaimedJob) -> None:
        delivery_id = str(job.payload["delivery_id"])
        out = await self._db(
            delivery_service.outgoing,
            write=True,
            delivery_id=delivery_id,
            box=self.box,
            public_url=self.public_url,
            attempt=job.attempts,
        )
        if out is None:
            await self._db(finish_job, write=True, claimed=job)
            return
        kind = self.kinds.get(out.kind)
        result: Sent
        if kind is None:
            result = failed(Stopwatch(), f"this server has no integration kind {out.kind!r}", permanent=True)
        else:
            try:
                result = await kind.send(out, self.http)
            except Exception as exc:  # a bug in a kind must not lose the delivery: it is recorded and retried
                logger.error(
                    "integration %s failed to send delivery %s: %s",
                    out.integration_id,
                    delivery_id,
                    type(exc).__name__,
                )
                result = failed(Stopwatch(), f"{type(exc).__name__}: {exc}")
        result = scrubbed(result, out.secrets)  # what is kept and shown never holds a token
        last = job.attempts >= len(self.retry_delays) + 1
        outcome = await self._db(
            delivery_service.record_attempt,
            write=True,
            claimed=job,
            delivery_id=delivery_id,
            result=result,
            last_attempt=last,
        )
        if outcome == "retry":
            delay = self._deliver_kind.delay_before(job.attempts)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, 3600.0))
            await self._db(
                delivery_service.note_next_attempt,
                write=True,
                delivery_id=delivery_id,
                at=utcnow() + timedelta(seconds=delay),
            )
            raise Retry(result.error or "the tool did not accept the request", after=delay)
