"""What every integration shares: the work handed to it, what one attempt gave, the inbound request, and the
decision an inbound request asks for. The kinds themselves (slack.py, jira.py ...) only speak their tool's API.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

REVIEW_EVENTS = ("review.created", "review.resolved")
EXCERPT_CHARS = 1000


class IntegrationConfig(BaseModel):
    """A kind's ``config``. Fields named in ``SECRETS`` are write-only: sealed at rest, never shown."""

    model_config = ConfigDict(extra="forbid")
    SECRETS: ClassVar[frozenset[str]] = frozenset()
    # Fields holding a URL that Casework calls: checked as webhook URLs are (no private addresses unless allowed).
    URLS: ClassVar[frozenset[str]] = frozenset()

    allowed_reviewers: list[str] = Field(
        default_factory=list,
        description="Who may decide from the tool: e-mail addresses, or '@domain' for a whole domain. Empty: "
        "anyone the tool shows an e-mail address for.",
    )


@dataclass(frozen=True)
class Link:
    """Where a review lives in the tool (a message, an issue, a record, a ticket)."""

    external_id: str
    url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    """One delivery, with everything needed to send it and nothing that needs the database."""

    delivery_id: str
    integration_id: str
    kind: str
    action: str  # open | resolve | reply | digest | test
    config: dict[str, Any]
    secrets: dict[str, str]
    review: dict[str, Any] | None  # the review as its event recorded it
    link: Link | None
    payload: dict[str, Any]
    public_url: str
    attempt: int

    @property
    def review_url(self) -> str:
        return f"{self.public_url}/reviews/{self.review['id']}" if self.review else self.public_url


@dataclass
class Sent:
    """What one attempt gave. ``permanent``: retrying cannot help (the tool refused the request as such)."""

    status_code: int | None
    latency_ms: float = 0.0
    error: str | None = None
    excerpt: str | None = None
    link: Link | None = None
    retry_after: float | None = None
    permanent: bool = False

    @property
    def succeeded(self) -> bool:
        return self.error is None


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


def from_response(
    response: httpx.Response, watch: Stopwatch, *, link: Link | None = None, label: str | None = None
) -> Sent:
    """An HTTP answer as an attempt's result: 2xx succeeded; 408, 429 and 5xx are retried; other 4xx are not.
    ``label`` names the call in errors instead of its path (for a URL that is itself a secret)."""
    excerpt = response.text[:EXCERPT_CHARS]
    if response.is_success:
        return Sent(response.status_code, watch.ms, None, excerpt, link)
    retry_after = _retry_after(response.headers.get("retry-after"))
    transient = response.status_code in (408, 429) or response.status_code >= 500
    return Sent(
        response.status_code,
        watch.ms,
        f"{label or f'{response.request.method} {response.request.url.path}'} answered {response.status_code}",
        excerpt,
        retry_after=retry_after,
        permanent=not transient,
    )


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization: Basic`` header's value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def failed(watch: Stopwatch, error: str, *, permanent: bool = False) -> Sent:
    return Sent(None, watch.ms, error, permanent=permanent)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


async def call(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    watch: Stopwatch,
    *,
    label: str | None = None,
    **kwargs: Any,
) -> httpx.Response | Sent:
    """A request, or the failed attempt when it never got an answer. ``label`` names it in errors instead of
    its URL (for a URL that is itself a secret)."""
    shown = label or f"{method} {httpx.URL(url).copy_with(query=None)}"
    try:
        return await http.request(method, url, **kwargs)
    except httpx.TimeoutException:
        return failed(watch, f"{shown} did not answer in time")
    except httpx.HTTPError as exc:
        return failed(watch, f"{shown}: {type(exc).__name__}")


def scrubbed(result: Sent, secrets: Mapping[str, str]) -> Sent:
    """The result with every secret's value blanked out of what is kept and shown (errors, excerpts)."""

    def scrub(text: str | None) -> str | None:
        if text is None:
            return None
        for value in secrets.values():
            if value and len(value) >= 6:
                text = text.replace(value, "[secret]")
        return text

    result.error = scrub(result.error)
    result.excerpt = scrub(result.excerpt)
    return result


# --- inbound ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """A request from the tool, and the integration it was addressed to."""

    integration_id: str
    config: dict[str, Any]
    secrets: dict[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    public_url: str
    # The reviews linked to one of the tool's objects (an issue key, a sys_id, a ticket id), newest first.
    linked: Callable[[str], Awaitable[list[str]]]
    # The resolution of one of this integration's reviews, None while it is pending (or not this integration's).
    resolution: Callable[[str], Awaitable[dict[str, Any] | None]]
    # The tool says one of its tickets (by its id) is closed (True) or open again (False): kept on its links, so
    # that the SLA sweep pauses only reviews whose ticket is open. Returns how many reviews it is linked to.
    ticket_state: Callable[[str, bool], Awaitable[int]]


@dataclass(frozen=True)
class Decision:
    """What the tool asks for: this classification of this review, with this reasoning, by this person."""

    review_id: str
    classification: str
    reasoning: str
    reviewer: str | None  # the tool user's e-mail; None when the tool did not say who it was
    tags: list[str] = field(default_factory=list)
    # Where to answer in the tool if the decision cannot be applied (a Jira issue key, a ticket id ...).
    reply_to: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of a decision: ``accepted``, ``already_decided``, ``refused`` (invalid, unknown person,
    not this integration's review). ``message`` is what the person sees in the tool."""

    status: str
    message: str
    review_id: str | None = None
    control_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


Decide = Callable[[Decision], Awaitable[Outcome]]


@dataclass(frozen=True)
class Reply:
    """The HTTP answer to the tool."""

    status_code: int
    body: dict[str, Any] | None = None


def noted(external_id: str, closed: bool, linked: int) -> Reply:
    """The answer to a request that told Casework a ticket's state and asked for no decision; ``linked``: how
    many reviews the ticket is linked to."""
    if not linked:
        return Reply(200, {"status": "ignored", "message": f"{external_id} has no Casework review."})
    return Reply(200, {"status": "noted", "message": f"{external_id} is {'closed' if closed else 'open'}."})


class Kind(Protocol):
    name: str
    title: str
    config: type[IntegrationConfig]
    events: frozenset[str]
    default_events: tuple[str, ...]

    async def send(self, out: Outgoing, http: httpx.AsyncClient) -> Sent: ...

    async def receive(self, request: Inbound, decide: Decide, http: httpx.AsyncClient) -> Reply: ...
