"""The reviewer web UI: server-rendered pages (Jinja2, escaped everywhere), a little plain JavaScript for the
keyboard, and forms that work without it. Each page reads in one transaction, each form writes in one.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from anyio import to_thread
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from casework.api.deps import Db, WriteDb, database_threads, get_database
from casework.db.types import utcnow
from casework.errors import CaseworkError, PermissionDenied, ValidationFailed
from casework.evaluators.runner import EvaluationRunner
from casework.services import controls as control_service
from casework.services import web_auth
from casework.services import web_pages as pages
from casework.services.review_queries import ReviewFilters
from casework.services.reviews import Feedback

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
static = StaticFiles(directory=str(HERE / "static"))
router = APIRouter(include_in_schema=False)

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


def _check_csrf(caller: web_auth.WebCaller, token: str) -> None:
    if not hmac.compare_digest(caller.csrf_token, token or ""):
        raise PermissionDenied("This form is out of date (CSRF check failed): reload the page and try again.")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"now": utcnow(), **context}, status_code=status_code)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- signing in ---------------------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, db: WriteDb, token: str | None = None, next: str = "/") -> Response:
    if token:  # the one-time link printed by `casework serve` / `casework login-link`
        try:
            signed = await db(web_auth.redeem_login_link, token=token)
        except CaseworkError as error:
            return render(request, "login.html", 401, error=error.message, next=next, login_csrf="")
        return _signed_in(signed, _safe_next(next), request)
    login_csrf = secrets.token_urlsafe(16)
    response = render(request, "login.html", next=next, login_csrf=login_csrf, error=None)
    response.set_cookie(LOGIN_COOKIE, login_csrf, httponly=True, samesite="lax", secure=_https(request))
    return response


@router.post("/login")
async def login(
    request: Request,
    db: Db,
    api_key: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf):
        return render(
            request, "login.html", 403, error="The form expired: try again.", next=next, login_csrf=""
        )
    try:
        signed = await db(web_auth.sign_in_with_key, secret=api_key)
    except CaseworkError as error:
        login_csrf = secrets.token_urlsafe(16)
        response = render(request, "login.html", 401, error=error.message, next=next, login_csrf=login_csrf)
        response.set_cookie(LOGIN_COOKIE, login_csrf, httponly=True, samesite="lax", secure=_https(request))
        return response
    return _signed_in(signed, _safe_next(next), request)


def _signed_in(signed: web_auth.SignedIn, next_url: str, request: Request) -> Response:
    response = _redirect(next_url)
    response.set_cookie(
        COOKIE,
        signed.secret,
        max_age=web_auth.SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=_https(request),
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


def _safe_next(value: str) -> str:
    """Only paths on this site: a sign-in link must not send anyone elsewhere."""
    return value if value.startswith("/") and not value.startswith("//") else "/"


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


@router.post("/logout")
async def logout(request: Request, db: Db, caller: Viewer, csrf: Annotated[str, Form()] = "") -> Response:
    _check_csrf(caller, csrf)
    await db(web_auth.sign_out, secret=request.cookies.get(COOKIE, ""))
    response = _redirect("/login")
    response.delete_cookie(COOKIE)
    return response


# --- pages ---------------------------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request, db: Db, caller: Viewer) -> Response:
    rows = await db(pages.projects_page, principal=caller.principal)
    return render(request, "projects.html", caller=caller, rows=rows)


@router.get("/projects/{project_id}/queue")
async def queue(
    request: Request,
    db: Db,
    caller: Viewer,
    project_id: str,
    status: Annotated[str, Query(pattern="^(pending|resolved|dismissed|all)$")] = "pending",
    evaluator: str = "",
    tag: str = "",
    cursor: str | None = None,
) -> Response:
    filters = ReviewFilters(
        project_id=project_id, status=status, evaluator_type=evaluator or None, tag=tag or None
    )
    page = await db(pages.queue_page, principal=caller.principal, filters=filters, cursor=cursor)
    more = None
    if page.next_cursor:
        more = f"?{urlencode({'status': status, 'evaluator': evaluator, 'tag': tag, 'cursor': page.next_cursor})}"
    return render(
        request,
        "queue.html",
        caller=caller,
        page=page,
        project=page.project,
        status=status,
        evaluator=evaluator,
        tag=tag,
        more=more,
    )


@router.get("/reviews/{review_id}")
async def review(request: Request, db: Db, caller: Viewer, review_id: str) -> Response:
    page = await db(pages.review_page, principal=caller.principal, review_id=review_id)
    runner: EvaluationRunner = request.app.state.runner
    similar = await runner.search(
        principal=caller.principal,
        project_id=page.review.project_id,
        evaluator_type=page.review.evaluator_type,
        query=page.review.query,
        response=page.review.response,
        k=5,
    )
    return render(
        request,
        "review.html",
        caller=caller,
        page=page,
        project=page.project,
        review=page.review,
        similar=similar,
        error=request.query_params.get("error"),
    )


@router.post("/reviews/{review_id}/decide")
async def decide(
    request: Request,
    db: Db,
    caller: Viewer,
    review_id: str,
    classification: Annotated[str, Form()] = "",
    reasoning: Annotated[str, Form()] = "",
    tags: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(caller, csrf)
    caller.principal.require_write()
    cleaned_tags = [t.strip().lower() for t in tags.replace(";", ",").split(",") if t.strip()]
    problem = None
    if not classification:
        problem = "Choose a classification."
    elif not reasoning.strip():
        problem = "Write your reasoning: it is what the judge will see on similar cases."
    if problem is None:
        try:
            project_id, next_id = await db(
                pages.decide,
                principal=caller.principal,
                review_id=review_id,
                feedback=Feedback(classification, reasoning.strip(), caller.principal.label, cleaned_tags),
            )
        except ValidationFailed as error:
            problem = error.message
    if problem is not None:
        return _redirect(f"/reviews/{review_id}?error={quote(problem)}")
    if request.app.state.worker is not None:
        request.app.state.worker.wake()  # the memory pass of the new control
    return _redirect(f"/reviews/{next_id}" if next_id else f"/projects/{project_id}/queue?decided=1")


@router.get("/projects/{project_id}/controls")
async def controls(
    request: Request,
    db: Db,
    caller: Viewer,
    project_id: str,
    q: str = "",
    evaluator: str = "",
    tag: str = "",
    reviewer: str = "",
    status: Annotated[str, Query(pattern="^(active|retired|all)$")] = "active",
    cursor: str | None = None,
) -> Response:
    page = await db(
        control_service.list_controls,
        principal=caller.principal,
        project_id=project_id,
        evaluator_type=evaluator or None,
        tag=tag or None,
        reviewer=reviewer or None,
        status=status,
        q=q or None,
        limit=50,
        cursor=cursor,
    )
    more = None
    if page.next_cursor:
        more = "?" + urlencode(
            {
                "q": q,
                "evaluator": evaluator,
                "tag": tag,
                "reviewer": reviewer,
                "status": status,
                "cursor": page.next_cursor,
            }
        )
    return render(
        request,
        "controls.html",
        caller=caller,
        project_id=project_id,
        controls=page.controls,
        q=q,
        evaluator=evaluator,
        tag=tag,
        reviewer=reviewer,
        status=status,
        more=more,
    )


@router.get("/controls/{control_id}")
async def control(request: Request, db: Db, caller: Viewer, control_id: str) -> Response:
    page = await db(pages.control_page, principal=caller.principal, control_id=control_id)
    return render(request, "control.html", caller=caller, page=page, control=page.control)


@router.post("/controls/{control_id}")
async def edit_control(
    request: Request,
    db: Db,
    caller: Viewer,
    control_id: str,
    reasoning: Annotated[str, Form()] = "",
    tags: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "save",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(caller, csrf)
    caller.principal.require_write()
    if action == "retire":
        await db(control_service.retire_control, principal=caller.principal, control_id=control_id)
    else:
        cleaned = [t.strip().lower() for t in tags.replace(";", ",").split(",") if t.strip()]
        await db(
            control_service.update_control,
            principal=caller.principal,
            control_id=control_id,
            changes={"reasoning": reasoning.strip(), "tags": cleaned},
        )
    return _redirect(f"/controls/{control_id}")


@router.get("/projects/{project_id}/overview")
async def overview(request: Request, db: Db, caller: Viewer, project_id: str) -> Response:
    data = await db(pages.overview_page, principal=caller.principal, project_id=project_id)
    return render(request, "overview.html", caller=caller, data=data, project=data.project)


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


templates.env.globals.update(age=age, age_class=age_class)


def render_error(request: Request, error: CaseworkError) -> Response:
    """Errors on pages, as a page: same message and code as the API's JSON."""
    return render(request, "error.html", error.status_code, error=error)


def install(app: FastAPI) -> None:
    """Mount the UI on an app: pages, static files, sign-in redirects, errors as pages."""
    app.mount("/static", static, name="static")
    app.include_router(router)
    app.state.render_error = render_error

    @app.exception_handler(SignInRequired)
    async def _sign_in(_request: Request, exc: SignInRequired) -> Response:
        return _redirect(f"/login?{urlencode({'next': exc.path})}")
