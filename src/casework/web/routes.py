"""The reviewer web UI: server-rendered pages (Jinja2, escaped everywhere), a little plain JavaScript for the
keyboard, and forms that work without it. Each page reads in one transaction, each form writes in one.

This module: signing in, the queue, reviews, controls and the overview; ``trace_routes`` and
``admin_routes`` hold the rest, and :func:`install` mounts them all.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError

from casework.api.deps import Db, ReadDb, WriteDb
from casework.api.schemas.controls import ControlUpdate
from casework.api.schemas.reviews import FeedbackCreate
from casework.errors import CaseworkError, ValidationFailed
from casework.services import agreement_reports, web_auth
from casework.services import controls as control_service
from casework.services import evaluators as evaluator_service
from casework.services import web_pages as pages
from casework.services.auth import Role
from casework.services.evidence import summary_record
from casework.services.pagination import to_json_time
from casework.services.review_queries import ReviewFilters
from casework.services.reviews import Feedback
from casework.web import admin_routes, trace_routes
from casework.web.agreement_chart import agreement_chart
from casework.web.charts import overview_charts
from casework.web.common import (
    COOKIE,
    HERE,
    LOGIN_COOKIE,
    SignInRequired,
    Viewer,
    check_csrf,
    docs_assets,
    form_problem,
    redirect,
    render,
    render_error,
    split_tags,
    static,
)
from casework.web.security import SecurityHeaders
from casework.worker.runner import EvaluationRunner

router = APIRouter(include_in_schema=False)

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
    response = redirect(next_url)
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
    check_csrf(caller, csrf)
    await db(web_auth.sign_out, secret=request.cookies.get(COOKIE, ""))
    response = redirect("/login")
    response.delete_cookie(COOKIE)
    return response


# --- pages ---------------------------------------------------------------------------------------------------


@router.get("/docs")
async def api_docs(request: Request) -> Response:
    """The API's OpenAPI document in Swagger UI; the document itself is /openapi.json."""
    return render(request, "docs.html")


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever a page links: the pages' icon, for anyone, cached for a day."""
    return FileResponse(
        HERE / "static" / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


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
    status: Annotated[str, Query(pattern="^(pending|resolved|needs_adjudication|all)$")] = "pending",
    evaluator: str = "",
    resolved_by: Annotated[str, Query(pattern="^(|human|memory)$")] = "",
    q: Annotated[str, Query(max_length=500)] = "",
    tag: str = "",
    sort: Annotated[str, Query(pattern="^(queue|due)$")] = "queue",
    overdue: Annotated[str, Query(pattern="^(|1)$")] = "",
    assigned: Annotated[str, Query(pattern="^(|me)$")] = "",
    cursor: str | None = None,
) -> Response:
    filters = ReviewFilters(
        project_id=project_id,
        status=status,
        evaluator_type=evaluator or None,
        tag=tag or None,
        resolved_by=resolved_by or None,
        q=q or None,
        sort=sort,
        overdue=bool(overdue),
        assigned_to=assigned or None,
    )
    page = await db(pages.queue_page, principal=caller.principal, filters=filters, cursor=cursor)
    chosen: dict[str, Any] = {
        "status": status,
        "evaluator": evaluator,
        "resolved_by": resolved_by,
        "q": q,
        "tag": tag,
        "sort": sort,
        "overdue": overdue,
        "assigned": assigned,
    }
    more = f"?{urlencode({**chosen, 'cursor': page.next_cursor})}" if page.next_cursor else None
    return render(request, "queue.html", caller=caller, page=page, project=page.project, more=more, **chosen)


@router.get("/reviews/{review_id}")
async def review(request: Request, db: WriteDb, caller: Viewer, review_id: str) -> Response:
    # A writer opening a pending review claims it: memory leaves it alone, and other reviewers' "next" skips it.
    page = await db(pages.review_page, principal=caller.principal, review_id=review_id, claim=True)
    return await _review_response(request, caller, page)


async def _review_response(
    request: Request,
    caller: web_auth.WebCaller,
    page: pages.ReviewPage,
    status_code: int = 200,
    kept: dict[str, Any] | None = None,
    error: str | None = None,
    conflict: dict[str, Any] | None = None,
) -> Response:
    """The review page; after a refused or overtaken submission, with what the reviewer typed (``kept``, or
    ``conflict``) and why (``error``): in the page, never in a URL."""
    runner: EvaluationRunner = request.app.state.runner
    similar = await runner.search(
        principal=caller.principal,
        project_id=page.review.project_id,
        evaluator_type=page.review.evaluator_type,
        query=page.review.query,
        response=page.review.response,
        k=5,
    )
    kept = conflict or kept or {"reasoning": "", "tags": "", "choice": None}
    return render(
        request,
        "review.html",
        status_code,
        caller=caller,
        page=page,
        project=page.project,
        review=page.review,
        similar=similar,
        error=error,
        can_write=caller.principal.role is not Role.viewer,
        kept=kept,
        conflict=conflict,
    )


@router.get("/reviews/{review_id}/suggestion")
async def suggestion(request: Request, db: Db, caller: Viewer, review_id: str) -> Response:
    """Memory's suggestion as a fragment of the review page, for the open page to show when it arrives (app.js);
    204 while there is none."""
    found = await db(pages.suggestion_now, principal=caller.principal, review_id=review_id)
    if found is None:
        return Response(status_code=204)
    return render(request, "_suggestion.html", s=found)


@router.post("/reviews/{review_id}/claim")
async def renew_claim(db: Db, caller: Viewer, review_id: str, csrf: Annotated[str, Form()] = "") -> Response:
    """The open review page renews its claim every few minutes (app.js): the new end, for its release."""
    check_csrf(caller, csrf)
    review = await db(pages.renew_claim, principal=caller.principal, review_id=review_id)
    return JSONResponse({"claim_expires_at": to_json_time(review.claim_expires_at)})


@router.post("/reviews/{review_id}/release")
async def release_claim(
    db: Db,
    caller: Viewer,
    review_id: str,
    csrf: Annotated[str, Form()] = "",
    until: Annotated[str, Form()] = "",
) -> Response:
    """The reviewer left the page without deciding (app.js, on leaving)."""
    check_csrf(caller, csrf)
    await db(pages.release_claim, principal=caller.principal, review_id=review_id, until=until or None)
    return Response(status_code=204)


@router.post("/reviews/{review_id}/decide")
async def decide(
    request: Request,
    db: Db,
    read_db: ReadDb,
    caller: Viewer,
    review_id: str,
    classification: Annotated[str, Form()] = "",
    reasoning: Annotated[str, Form()] = "",
    tags: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    agree: Annotated[str, Form()] = "",
    overturn: Annotated[str, Form()] = "",
) -> Response:
    """Decide a pending review; on one memory resolved, ``agree`` (memory's classification, which the service
    checks: a different one is refused unless overturning) or ``overturn`` with the chosen classification."""
    check_csrf(caller, csrf)
    caller.principal.require_write()
    if agree:
        classification = agree
    problem = None
    if not classification:
        problem = "Choose a classification."
    elif not reasoning.strip():
        problem = "Write your reasoning: it is what the judge will see on similar cases."
    if problem is None:
        try:
            form = FeedbackCreate(
                classification=classification,
                reasoning=reasoning,
                reviewer=caller.principal.label,
                tags=split_tags(tags),
            )
            decided = await db(
                pages.decide,
                principal=caller.principal,
                review_id=review_id,
                feedback=Feedback(form.classification, form.reasoning, form.reviewer, form.tags),
                overturn=bool(overturn) and not agree,
            )
        except ValidationError as error:
            problem = form_problem(error)
        except ValidationFailed as error:
            problem = error.message
    typed = {"reasoning": reasoning, "tags": tags, "choice": classification}
    if problem is not None:
        # The form again (422), with the problem and what was typed, so nothing is lost; not a redirect, which
        # would carry the reasoning in its URL, into browser history and access logs.
        page = await read_db(pages.review_page, principal=caller.principal, review_id=review_id)
        return await _review_response(request, caller, page, 422, kept=typed, error=problem)
    if decided.overtaken is not None:
        # Decided while the page was open (by memory, or another person): the page again, with what was decided
        # and what this reviewer typed, so that nothing is lost.
        return await _review_response(request, caller, decided.overtaken, 409, conflict=typed)
    if decided.next_id:
        return redirect(f"/reviews/{decided.next_id}")
    return redirect(f"/projects/{decided.project_id}/queue?decided=1")


@router.get("/projects/{project_id}/controls")
async def controls(
    request: Request,
    db: Db,
    caller: Viewer,
    project_id: str,
    q: Annotated[str, Query(max_length=1000)] = "",
    evaluator: str = "",
    tag: str = "",
    reviewer: str = "",
    status: Annotated[str, Query(pattern="^(active|retired|all)$")] = "active",
    cursor: str | None = None,
) -> Response:
    chosen: dict[str, Any] = {
        "q": q,
        "evaluator": evaluator,
        "tag": tag,
        "reviewer": reviewer,
        "status": status,
    }
    page = await db(
        pages.controls_page,
        principal=caller.principal,
        project_id=project_id,
        q=q or None,
        evaluator_type=evaluator or None,
        tag=tag or None,
        reviewer=reviewer or None,
        status=status,
        cursor=cursor,
    )
    more = f"?{urlencode({**chosen, 'cursor': page.next_cursor})}" if page.next_cursor else None
    return render(
        request,
        "controls.html",
        caller=caller,
        page=page,
        project=page.project,
        controls=page.controls,
        more=more,
        **chosen,
    )


@router.get("/controls/{control_id}")
async def control(request: Request, db: Db, caller: Viewer, control_id: str) -> Response:
    page = await db(pages.control_page, principal=caller.principal, control_id=control_id)
    return _control_response(request, caller, page)


def _control_response(
    request: Request, caller: web_auth.WebCaller, page: pages.ControlPage, confirm_retire: bool = False
) -> Response:
    return render(
        request,
        "control.html",
        caller=caller,
        page=page,
        project=page.project,
        control=page.control,
        error=request.query_params.get("error"),
        can_write=caller.principal.role is not Role.viewer,
        confirm_retire=confirm_retire,
    )


@router.post("/controls/{control_id}")
async def edit_control(
    request: Request,
    db: Db,
    caller: Viewer,
    control_id: str,
    reasoning: Annotated[str, Form()] = "",
    tags: Annotated[str, Form()] = "",
    classification: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "save",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Save a new version, clear the attention flags, or retire: "retire" asks first (saying how many reviews
    memory decided with the control will re-open), "retire-confirmed" retires."""
    check_csrf(caller, csrf)
    caller.principal.require_write()
    if action == "retire":
        page = await db(pages.control_page, principal=caller.principal, control_id=control_id)
        return _control_response(request, caller, page, confirm_retire=True)
    if action == "retire-confirmed":
        await db(control_service.retire_control, principal=caller.principal, control_id=control_id)
        return redirect(f"/controls/{control_id}")
    if action == "clear-attention":
        await db(control_service.clear_attention, principal=caller.principal, control_id=control_id)
        return redirect(f"/controls/{control_id}")
    try:
        fields: dict[str, Any] = {"reasoning": reasoning, "tags": split_tags(tags)}
        if classification:
            fields["classification"] = classification
        changes = ControlUpdate(**fields)
        await db(
            pages.edit_control,
            principal=caller.principal,
            control_id=control_id,
            changes=changes.model_dump(exclude_unset=True),
        )
    except ValidationError as error:
        return redirect(f"/controls/{control_id}?{urlencode({'error': form_problem(error)})}")
    except ValidationFailed as error:
        return redirect(f"/controls/{control_id}?{urlencode({'error': error.message})}")
    return redirect(f"/controls/{control_id}")


@router.get("/projects/{project_id}/overview")
async def overview(request: Request, db: Db, write_db: WriteDb, caller: Viewer, project_id: str) -> Response:
    data = await db(pages.overview_page, principal=caller.principal, project_id=project_id)
    served = data.agreement_served
    if served is not None and (served.to_store is not None or served.mark_requested):
        await write_db(agreement_reports.keep, project_id=project_id, served=served)
    runner: EvaluationRunner = request.app.state.runner
    evidence = []
    for evaluator in data.evaluators:
        # Memory's evidence in the same numbers and words as GET /api/v1/evaluators/{id}/memory.
        definition = evaluator_service.definition_of(evaluator)
        calibration = await runner.calibration(project_id=evaluator.project_id, definition=definition)
        evidence.append((evaluator, summary_record(calibration, definition, subject="memory")))
    return render(
        request,
        "overview.html",
        caller=caller,
        data=data,
        project=data.project,
        evidence=evidence,
        agreement=agreement_chart(data.agreement) if data.agreement is not None else None,
        charts=overview_charts(data.trends),
    )


def install(app: FastAPI) -> None:
    """Mount the UI on an app: pages, static files, sign-in redirects, errors as pages."""
    app.add_middleware(SecurityHeaders)
    app.mount("/static", static, name="static")
    app.mount("/docs-assets", docs_assets, name="docs-assets")
    app.include_router(router)
    app.include_router(trace_routes.router)
    app.include_router(admin_routes.router)
    app.state.render_error = render_error

    @app.exception_handler(SignInRequired)
    async def _sign_in(_request: Request, exc: SignInRequired) -> Response:
        return redirect(f"/login?{urlencode({'next': exc.path})}")
