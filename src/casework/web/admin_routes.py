"""Administration in the web UI: the audit trail, project settings, golden sets and API keys."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from cryptography.fernet import InvalidToken
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from casework.api.deps import Db, ReadDb
from casework.api.schemas.evaluators import EvaluatorUpdate, definition_fields, update_body
from casework.api.schemas.projects import ProjectUpdate
from casework.api.schemas.risk_tiers import RiskPolicyIn
from casework.errors import ValidationFailed
from casework.services import api_keys, integration_deliveries, integration_log, risk_tiers
from casework.services import web_pages as pages
from casework.services.auth import Role
from casework.web.common import Viewer, check_csrf, form_problem, problem_words, redirect, render

router = APIRouter(include_in_schema=False)


Actor = Annotated[str, Query(max_length=300)]
Since = Annotated[str, Query(alias="from", max_length=40)]
Until = Annotated[str, Query(alias="to", max_length=40)]


@router.get("/projects/{project_id}/audit")
async def audit(
    request: Request,
    db: Db,
    caller: Viewer,
    project_id: str,
    action: str = "",
    object_id: Annotated[str, Query(max_length=40)] = "",
    actor: Actor = "",
    since: Since = "",
    until: Until = "",
    cursor: str | None = None,
) -> Response:
    chosen = {"action": action, "object_id": object_id, "actor": actor, "from": since, "to": until}
    return await _audit(request, db, caller, project_id, chosen, cursor)


@router.get("/admin/audit")
async def workspace_audit(
    request: Request,
    db: Db,
    caller: Viewer,
    action: str = "",
    object_id: Annotated[str, Query(max_length=40)] = "",
    actor: Actor = "",
    since: Since = "",
    until: Until = "",
    cursor: str | None = None,
) -> Response:
    """Admins: the workspace's own changes, of no one project (API keys, workspace-wide integrations...)."""
    chosen = {"action": action, "object_id": object_id, "actor": actor, "from": since, "to": until}
    return await _audit(request, db, caller, None, chosen, cursor)


async def _audit(
    request: Request, db: Any, caller: Any, project_id: str | None, chosen: dict[str, str], cursor: str | None
) -> Response:
    page = await db(
        pages.audit_page,
        principal=caller.principal,
        project_id=project_id,
        action=chosen["action"] or None,
        object_id=chosen["object_id"].strip() or None,
        actor=chosen["actor"].strip() or None,
        since=chosen["from"],
        until=chosen["to"],
        cursor=cursor,
    )
    more = f"?{urlencode({**chosen, 'cursor': page.next_cursor})}" if page.next_cursor else None
    return render(
        request,
        "audit.html",
        422 if page.error else 200,
        caller=caller,
        page=page,
        project=page.project,
        actions=pages.AUDIT_ACTIONS,
        more=more,
        chosen=chosen,
    )


def _settings_page(
    request: Request,
    caller: Any,
    page: pages.SettingsPage,
    status_code: int = 200,
    editing: dict[str, Any] | None = None,
) -> Response:
    """The settings; ``editing``: an evaluator's refused change (its id, the text as typed, every problem)."""
    return render(
        request,
        "settings.html",
        status_code,
        caller=caller,
        project=page.project,
        evaluators=page.evaluators,
        error=request.query_params.get("error"),
        saved=request.query_params.get("saved"),
        can_write=caller.principal.role is not Role.viewer,
        can_edit_evaluators=caller.principal.role is Role.admin,
        offered={e.id: json.dumps(update_body(e), indent=2) for e in page.evaluators},
        editing=editing,
    )


@router.get("/projects/{project_id}/settings")
async def project_settings(request: Request, db: Db, caller: Viewer, project_id: str) -> Response:
    page = await db(pages.settings_page, principal=caller.principal, project_id=project_id)
    return _settings_page(request, caller, page)


@router.post("/projects/{project_id}/evaluators/{evaluator_id}")
async def change_evaluator(
    request: Request,
    db: Db,
    read_db: ReadDb,
    caller: Viewer,
    project_id: str,
    evaluator_id: str,
    definition: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Admins: a new version of an evaluator from the JSON of its update body (PATCH /api/v1/evaluators/{id}),
    checked by the API's schema and service; a refused one comes back (422) with every problem and the text."""
    check_csrf(caller, csrf)
    caller.principal.require_admin()
    problems: list[str] = []
    try:
        changes = definition_fields(EvaluatorUpdate.model_validate_json(definition))
        evaluator, _ = await db(
            pages.change_evaluator,
            principal=caller.principal,
            project_id=project_id,
            evaluator_id=evaluator_id,
            changes=changes,
        )
    except ValidationError as error:
        problems = [problem_words(item) for item in error.errors()]
    except ValidationFailed as error:  # the service's rules (placeholders, options...): nothing was written
        problems = [error.message]
    if problems:
        page = await read_db(pages.settings_page, principal=caller.principal, project_id=project_id)
        editing = {"id": evaluator_id, "text": definition, "problems": problems}
        return _settings_page(request, caller, page, 422, editing=editing)
    request.app.state.runner.evaluators_changed(project_id)
    return redirect(f"/projects/{project_id}/settings?{urlencode({'saved': evaluator.name})}")


@router.post("/projects/{project_id}/settings")
async def change_settings(
    db: Db,
    caller: Viewer,
    project_id: str,
    review_target_hours: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(caller, csrf)
    try:
        change = ProjectUpdate.model_validate({"review_target_hours": review_target_hours})
    except ValidationError as error:
        return redirect(f"/projects/{project_id}/settings?{urlencode({'error': form_problem(error)})}")
    await db(
        pages.change_review_target,
        principal=caller.principal,
        project_id=project_id,
        hours=change.review_target_hours,
    )
    return redirect(f"/projects/{project_id}/settings")


# --- risk tiers ----------------------------------------------------------------------------------------------


def _tiers_page(
    request: Request,
    caller: Any,
    page: pages.RiskTiersPage,
    *,
    text: str | None = None,
    problems: list[str] | None = None,
    impact: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    saved = {key: page.policy[key] for key in ("tiers", "rules", "default_tier")}
    return render(
        request,
        "risk_tiers.html",
        status_code=status_code,
        caller=caller,
        project=page.project,
        policy=page.policy,
        report=page.report,
        text=text
        if text is not None
        else (json.dumps(saved, indent=2) if page.policy["version"] else EXAMPLE),
        problems=problems or [],
        impact=impact,
        can_edit=caller.principal.role is Role.admin,
        saved=request.query_params.get("saved"),
    )


EXAMPLE = json.dumps(
    {
        "tiers": [
            {
                "name": "high",
                "review": "always",
                "memory_may_decide": False,
                "priority": 10,
                "reviewers_required": 2,
                "sla": {"target_hours": 4, "escalation_contact": "risk-lead@example.com"},
            },
            {"name": "standard", "review": "ambiguous", "spot_check_rate": 0.05},
        ],
        "rules": [
            {
                "tier": "high",
                "when": [{"field": "metadata.customer.segment", "op": "eq", "value": "private-banking"}],
            }
        ],
        "default_tier": "standard",
    },
    indent=2,
)


@router.get("/projects/{project_id}/risk-tiers")
async def risk_tiers_page(request: Request, db: Db, caller: Viewer, project_id: str) -> Response:
    page = await db(pages.risk_tiers_page, principal=caller.principal, project_id=project_id)
    return _tiers_page(request, caller, page)


@router.post("/projects/{project_id}/risk-tiers")
async def change_risk_tiers(
    request: Request,
    db: Db,
    caller: Viewer,
    project_id: str,
    policy: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "preview",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Preview (what the typed policy would have sent to people) or save; a wrong policy comes back with what
    was typed and every problem, in the API's words."""
    check_csrf(caller, csrf)
    caller.principal.require_admin()
    problems: list[str] = []
    document: dict[str, Any] | None = None
    try:
        document = RiskPolicyIn.model_validate_json(policy).model_dump(mode="json")
        risk_tiers.parse(document)
    except ValidationError as error:
        problems = [problem_words(item) for item in error.errors()]
    except ValidationFailed as error:
        problems = [f"{p['at']}: {p['problem']}" for p in (error.details or {}).get("problems", [])] or [
            error.message
        ]
    if problems or document is None:
        page = await db(pages.risk_tiers_page, principal=caller.principal, project_id=project_id)
        return _tiers_page(request, caller, page, text=policy, problems=problems, status_code=422)
    if action == "save":
        await db(risk_tiers.put_policy, principal=caller.principal, project_id=project_id, document=document)
        return redirect(f"/projects/{project_id}/risk-tiers?saved=1")
    page, impact = await db(
        pages.preview_risk_tiers,
        principal=caller.principal,
        project_id=project_id,
        document=document,
        default_spot_check_rate=request.app.state.settings.spot_check_rate,
    )
    return _tiers_page(request, caller, page, text=policy, impact=impact)


# --- administration ------------------------------------------------------------------------------------------


@router.get("/projects/{project_id}/golden")
async def golden_sets(request: Request, db: Db, caller: Viewer, project_id: str) -> Response:
    page = await db(pages.golden_page, principal=caller.principal, project_id=project_id)
    return render(request, "golden.html", caller=caller, project=page.project, golden_sets=page.golden_sets)


@router.get("/projects/{project_id}/golden/{golden_set_id}/compare")
async def golden_compare(
    request: Request,
    db: Db,
    caller: Viewer,
    project_id: str,
    golden_set_id: str,
    first: Annotated[str, Query(max_length=40)],
    second: Annotated[str, Query(max_length=40)],
) -> Response:
    page = await db(
        pages.golden_compare_page,
        principal=caller.principal,
        project_id=project_id,
        golden_set_id=golden_set_id,
        first=first,
        second=second,
    )
    return render(
        request,
        "golden_compare.html",
        caller=caller,
        project=page.project,
        golden_set=page.golden_set,
        comparison=page.comparison,
    )


# A new key's secret, sealed, for the one page after the form (Post/Redirect/Get: reloading that page creates
# nothing). The secret is in no URL and no log; the cookie holds it encrypted, opens only for the session's key,
# for two minutes, and is cleared by the page that shows it.
NEW_KEY_COOKIE = "casework_new_key"
NEW_KEY_SECONDS = 120


def _new_key(request: Request, caller: Any) -> dict[str, str] | None:
    sealed = request.cookies.get(NEW_KEY_COOKIE)
    if not sealed:
        return None
    try:
        shown: dict[str, str] = json.loads(request.app.state.secret_box.open(sealed, ttl=NEW_KEY_SECONDS))
    except (InvalidToken, ValueError):
        return None
    return shown if shown.get("for") == caller.principal.key_id else None


@router.get("/admin/keys")
async def keys(request: Request, db: Db, caller: Viewer) -> Response:
    page = await db(api_keys.keys_page, principal=caller.principal)
    response = render(
        request,
        "keys.html",
        # The page that may hold the secret: no cache, so that going back to it does not show it again.
        headers={"Cache-Control": "no-store"},
        caller=caller,
        keys=page.keys,
        created=_new_key(request, caller),
        error=None,
    )
    if NEW_KEY_COOKIE in request.cookies:
        response.delete_cookie(NEW_KEY_COOKIE, path="/admin/keys", httponly=True, samesite="strict")
    return response


@router.post("/admin/keys")
async def create_key(
    request: Request,
    db: Db,
    caller: Viewer,
    label: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "reviewer",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(caller, csrf)
    page = await db(api_keys.create_key_page, principal=caller.principal, role=role, label=label)
    created = page.created
    if created is None:  # nothing was written
        return render(
            request, "keys.html", 422, caller=caller, keys=page.keys, created=None, error=page.error
        )
    shown = {
        "secret": created.secret,
        "label": created.api_key.label,
        "role": created.api_key.role,
        "for": caller.principal.key_id,
    }
    response = redirect("/admin/keys")
    response.set_cookie(
        NEW_KEY_COOKIE,
        request.app.state.secret_box.seal(json.dumps(shown)),
        max_age=NEW_KEY_SECONDS,
        path="/admin/keys",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/admin/keys/{key_id}/revoke")
async def revoke(db: Db, caller: Viewer, key_id: str, csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(caller, csrf)
    await db(api_keys.revoke_workspace_key, principal=caller.principal, key_id=key_id)
    return redirect("/admin/keys")


@router.get("/integrations")
async def integrations(request: Request, db: Db, caller: Viewer, sent: int = 0) -> Response:
    rows = await db(integration_log.admin_page, principal=caller.principal)
    return render(
        request,
        "integrations.html",
        caller=caller,
        rows=rows,
        sent=bool(sent),
        public_url=request.app.state.settings.effective_public_url,
    )


@router.post("/integrations/{integration_id}/test")
async def test_integration(
    db: Db, caller: Viewer, integration_id: str, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(caller, csrf)
    await db(integration_deliveries.send_test, principal=caller.principal, integration_id=integration_id)
    return redirect("/integrations?sent=1")
