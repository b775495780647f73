"""``casework.Client``: the REST API, typed, raising one exception class per error code."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx

from casework.errors import (
    CaseworkError,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    error_class_for_code,
)
from casework.sdk.evaluators import CustomEvaluator

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
Json = dict[str, Any]


class Client:
    """A Casework server, from Python.

    Reads ``CASEWORK_API_KEY`` and ``CASEWORK_BASE_URL`` unless given. Every method returns the JSON the
    API returns; every error is raised as the ``casework.errors`` class of its code::

        client = casework.Client()
        for review in client.iter_reviews(project_id, status="pending"):
            client.submit_feedback(review["id"], classification="compliant", reasoning="...", reviewer="me")
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("CASEWORK_API_KEY")
        if not api_key:
            raise Unauthenticated("No API key: pass api_key= or set CASEWORK_API_KEY.")
        self.base_url = (base_url or os.environ.get("CASEWORK_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers={"x-api-key": api_key}, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"Cannot reach Casework at {self.base_url}: {exc}") from exc
        return _checked(response).json()

    # --- workspace, projects, runs ---------------------------------------------------------------------

    def workspace(self) -> Json:
        """The workspace of this key: a cheap way to check the key and the server."""
        result: Json = self._call("GET", "/api/v1/workspaces/current")
        return result

    def project(self, name: str) -> Json:
        """Get or create a project by name."""
        result: Json = self._call("POST", "/api/v1/projects", json={"name": name})
        return result

    def run(self, project_id: str, name: str) -> Json:
        """Get or create a run of a project by name."""
        result: Json = self._call("POST", f"/api/v1/projects/{project_id}/runs", json={"name": name})
        return result

    # --- reviews -------------------------------------------------------------------------------------------

    def enqueue_review(
        self, project_id: str, *, evaluator_type: str, query: str, response: str, **fields: Any
    ) -> Json:
        """Queue a review by hand (``options``, ``context``, ``priority``, ``span_id`` ... as keywords)."""
        body = {
            "project_id": project_id,
            "evaluator_type": evaluator_type,
            "query": query,
            "response": response,
            **fields,
        }
        result: Json = self._call("POST", "/api/v1/hitl/reviews", json=body)
        return result

    def iter_reviews(
        self,
        project_id: str,
        *,
        status: str = "pending",
        evaluator_type: str | None = None,
        tag: str | None = None,
        created_after: datetime | str | None = None,
        page_size: int = 100,
    ) -> Iterator[Json]:
        """Every matching review, page after page (pending: highest priority, then oldest, first)."""
        params = _params(
            project_id=project_id,
            status=status,
            evaluator_type=evaluator_type,
            tag=tag,
            created_after=created_after,
            limit=page_size,
        )
        while True:
            page = self._call("GET", "/api/v1/hitl/reviews", params=params)
            yield from page["reviews"]
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    def get_review(self, review_id: str) -> Json:
        result: Json = self._call("GET", f"/api/v1/hitl/reviews/{review_id}")
        return result

    def submit_feedback(
        self, review_id: str, *, classification: str, reasoning: str, reviewer: str, tags: Sequence[str] = ()
    ) -> Json:
        """Decide a review. ``reasoning`` becomes evaluation memory: write it as you would coach a junior."""
        body = {
            "classification": classification,
            "reasoning": reasoning,
            "reviewer": reviewer,
            "tags": list(tags),
        }
        result: Json = self._call("POST", f"/api/v1/hitl/reviews/{review_id}/feedback", json=body)
        return result

    def bulk_feedback(self, feedback: Iterable[Json]) -> Json:
        """Up to 1,000 decisions, each applied on its own: ``{"accepted", "rejected", "results"}``."""
        result: Json = self._call(
            "POST", "/api/v1/hitl/reviews/bulk-feedback", json={"feedback": list(feedback)}
        )
        return result

    def export_reviews(self, project_id: str, *, status: str = "pending", **filters: Any) -> Iterator[Json]:
        """Every matching review, streamed (JSON Lines on the wire): memory stays flat."""
        params = _params(project_id=project_id, status=status, format="jsonl", **filters)
        with self._http.stream("GET", "/api/v1/hitl/reviews/export", params=params) as response:
            if response.status_code >= 400:
                response.read()
                _checked(response)
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)

    # --- controls ------------------------------------------------------------------------------------------

    def iter_controls(self, project_id: str, *, page_size: int = 100, **filters: Any) -> Iterator[Json]:
        """A project's evaluation memory (filters: evaluator_type, tag, reviewer, status, q, created_after)."""
        params = _params(project_id=project_id, limit=page_size, **filters)
        while True:
            page = self._call("GET", "/api/v1/controls", params=params)
            yield from page["controls"]
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    def get_control(self, control_id: str) -> Json:
        result: Json = self._call("GET", f"/api/v1/controls/{control_id}")
        return result

    def create_control(self, project_id: str, **fields: Any) -> Json:
        """A control written up front (evaluator_type, classification, reasoning, reviewer, tags ...)."""
        result: Json = self._call("POST", "/api/v1/controls", json={"project_id": project_id, **fields})
        return result

    def update_control(self, control_id: str, **changes: Any) -> Json:
        """A new version with ``classification``, ``reasoning``, ``tags`` or ``status`` changed."""
        result: Json = self._call("PATCH", f"/api/v1/controls/{control_id}", json=changes)
        return result

    def retire_control(self, control_id: str) -> Json:
        result: Json = self._call("DELETE", f"/api/v1/controls/{control_id}")
        return result

    def control_history(self, control_id: str) -> list[Json]:
        result: list[Json] = self._call("GET", f"/api/v1/controls/{control_id}/history")["versions"]
        return result

    # --- evaluators and evaluations -----------------------------------------------------------------------

    def register_evaluator(self, project_id: str, evaluator: CustomEvaluator) -> Json:
        result: Json = self._call("POST", "/api/v1/evaluators", json=evaluator.to_request(project_id))
        return result

    def evaluate(
        self,
        project_id: str,
        evaluators: Sequence[str | CustomEvaluator],
        *,
        query: str,
        response: str,
        context: str | None = None,
        run_id: str | None = None,
    ) -> list[Json]:
        """Run evaluators on one interaction now; custom ones are registered first."""
        names = []
        for evaluator in evaluators:
            if isinstance(evaluator, CustomEvaluator):
                self.register_evaluator(project_id, evaluator)
                names.append(evaluator.name)
            else:
                names.append(evaluator)
        body = {
            "project_id": project_id,
            "evaluators": names,
            "query": query,
            "response": response,
            "context": context,
            "run_id": run_id,
        }
        result: list[Json] = self._call("POST", "/api/v1/evaluations", json=body)["evaluations"]
        return result


def _params(**values: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items() if v is not None}


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    try:
        error = response.json()["error"]
        cls = error_class_for_code(error["code"])
        message, details = error["message"], error.get("details") or {}
    except (ValueError, KeyError, TypeError):
        raise CaseworkError(f"HTTP {response.status_code} from Casework: {response.text[:200]}") from None
    exception = cls(message, details=details)
    if isinstance(exception, RateLimited | ServiceUnavailable):
        exception.retry_after = int(response.headers.get("retry-after", "1"))
    raise exception
