"""What every page of the web UI shares: templates, the signed-in caller, CSRF checks, rendering, errors."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from swagger_ui_bundle import swagger_ui_path

from casework.api.deps import database_threads, get_database
from casework.api.errors import error_headers
from casework.db.models import WAITING_STATUSES
from casework.db.types import utcnow
from casework.errors import CaseworkError, PermissionDenied
from casework.services import web_auth
from casework.web.markdown import render_markdown
from casework.web.security import SECURITY_HEADERS

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
static = StaticFiles(directory=str(HERE / "static"))
docs_assets = StaticFiles(directory=swagger_ui_path)

COOKIE = "casework_session"
LOGIN_COOKIE = "casework_login"


class SignInRequired(Exception):
    """Raised by pages when no valid session cookie came with the request: answered with a redirect."""

    def __init__(self, path: str) -> None:
        self.path = path


def _lookup(request: Request, secret: str) -> web_auth.WebCaller | None:
    with get_database(request).transaction(write=False) as session:
        return web_auth.web_caller(session, secret=secret)


async def web_caller(request: Request) -> web_auth.WebCaller:
    secret = request.cookies.get(COOKIE)
    caller = None
    if secret:
        caller = await to_thread.run_sync(_lookup, request, secret, limiter=database_threads(request))
    if caller is None:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return caller


Viewer = Annotated[web_auth.WebCaller, Depends(web_caller)]


def check_csrf(caller: web_auth.WebCaller, token: str) -> None:
    if not hmac.compare_digest(caller.csrf_token, token or ""):
        raise PermissionDenied("This form is out of date (CSRF check failed): reload the page and try again.")


def render(
    request: Request,
    name: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"now": utcnow(), **context}, status_code=status_code, headers=headers
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def form_problem(error: ValidationError) -> str:
    """The first problem of a form, in words: the same rules, and the same words, as the API's."""
    return problem_words(error.errors()[0])


def problem_words(item: Any) -> str:
    """One validation problem, in words: ``field.path: message``."""
    field = ".".join(str(part) for part in item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


def split_tags(text: str) -> list[str]:
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


# --- template helpers ----------------------------------------------------------------------------------------


def age(since: datetime | None, now: datetime | None = None) -> str:
    if since is None:
        return "none"
    seconds = max(((now or utcnow()) - since).total_seconds(), 0)
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def age_class(since: datetime | None, target_hours: float, now: datetime | None = None) -> str:
    """ "" within target, "amber" past three quarters of it, "red" past it."""
    if since is None:
        return ""
    hours = ((now or utcnow()) - since).total_seconds() / 3600
    if hours >= target_hours:
        return "red"
    return "amber" if hours >= 0.75 * target_hours else ""


def target(hours: float) -> str:
    """A target given in hours, in the unit that keeps it: "10 h", "1.5 h"; "1.2 min" under an hour, "0.36 s"
    under a minute (rounding a 0.02-hour target to "0.0 h" would say there is none)."""
    for unit, size in (("h", 1.0), ("min", 1 / 60), ("s", 1 / 3600)):
        if hours >= size or unit == "s":
            return f"{round(hours / size, 2):g} {unit}"
    raise AssertionError("unreachable: seconds take any value")


def lasting(seconds: float) -> str:
    """A length of time as the queue writes ages: "12 min", "3.5 h", "2.0 days"."""
    now = utcnow()
    return age(now - timedelta(seconds=seconds), now)


def due(review: Any, now: datetime | None = None) -> tuple[str, str]:
    """The SLA state of a review waiting for a decision, for the queue: ("3.5 h left", ""), ("1.0 h left",
    "amber") past the warning point, ("overdue 2.0 h", "red"), ("paused", "muted") while its clock is paused."""
    if review.due_at is None or review.status not in WAITING_STATUSES:
        return ("", "")
    if review.paused_at is not None:
        return ("paused", "muted")
    now = now or utcnow()
    left = (review.due_at - now).total_seconds()
    if left <= 0:
        return (f"overdue {age(review.due_at, now)}", "red")
    text = f"{age(now - timedelta(seconds=left), now)} left"
    return (text, "amber" if review.warn_at is not None and review.warn_at <= now else "")


def duration(start: datetime, end: datetime) -> str:
    milliseconds = max((end - start).total_seconds() * 1000, 0)
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.2f} s"
    return f"{milliseconds / 60_000:.1f} min"


templates.env.globals.update(
    age=age, age_class=age_class, duration=duration, due=due, lasting=lasting, target=target
)
templates.env.filters["markdown"] = render_markdown


def render_error(request: Request, error: CaseworkError) -> Response:
    """Errors on pages, as a page: same message and code as the API's JSON."""
    # Set here as well as by the middleware: a 500's page is sent from outside every middleware.
    headers = {**SECURITY_HEADERS, **error_headers(error)}
    return render(request, "error.html", error.status_code, error=error, headers=headers)
