"""``casework.Client`` and ``casework.AsyncClient``: the REST API, typed, raising one exception class per error
code. Both build their requests with the same functions (:class:`_Requests`); they differ only in how they send.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

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
Call = tuple[str, str, dict[str, Any]]


class _Requests:
    """Each API call as (method, path, keyword arguments for httpx): shared by both clients."""

    @staticmethod
    def workspace() -> Call:
        return "GET", "/api/v1/workspaces/current", {}

    @staticmethod
    def project(name: str) -> Call:
        return "POST", "/api/v1/projects", {"json": {"name": name}}

    @staticmethod
    def run(project_id: str, name: str, evaluators: Sequence[str] | None) -> Call:
        body: Json = {"name": name}
        if evaluators is not None:
            body["evaluators"] = list(evaluators)
        return "POST", f"/api/v1/projects/{project_id}/runs", {"json": body}

    @staticmethod
    def enqueue_review(project_id: str, evaluator_type: str, query: str, response: str, fields: Json) -> Call:
        body = {
            "project_id": project_id,
            "evaluator_type": evaluator_type,
            "query": query,
            "response": response,
            **fields,
        }
        return "POST", "/api/v1/hitl/reviews", {"json": body}

    @staticmethod
    def reviews(project_id: str, **filters: Any) -> Call:
        return "GET", "/api/v1/hitl/reviews", {"params": _params(project_id=project_id, **filters)}

    @staticmethod
    def get_review(review_id: str) -> Call:
        return "GET", f"/api/v1/hitl/reviews/{review_id}", {}

    @staticmethod
    def submit_feedback(
        review_id: str, classification: str, reasoning: str, reviewer: str, tags: Sequence[str]
    ) -> Call:
        body = {
            "classification": classification,
            "reasoning": reasoning,
            "reviewer": reviewer,
            "tags": list(tags),
        }
        return "POST", f"/api/v1/hitl/reviews/{review_id}/feedback", {"json": body}

    @staticmethod
    def bulk_feedback(feedback: Iterable[Json]) -> Call:
        return "POST", "/api/v1/hitl/reviews/bulk-feedback", {"json": {"feedback": list(feedback)}}

    @staticmethod
    def export_reviews(project_id: str, status: str, filters: Json) -> Call:
        params = _params(project_id=project_id, status=status, format="jsonl", **filters)
        return "GET", "/api/v1/hitl/reviews/export", {"params": params}

    @staticmethod
    def controls(project_id: str, **filters: Any) -> Call:
        return "GET", "/api/v1/controls", {"params": _params(project_id=project_id, **filters)}

    @staticmethod
    def get_control(control_id: str) -> Call:
        return "GET", f"/api/v1/controls/{control_id}", {}

    @staticmethod
    def create_control(project_id: str, fields: Json) -> Call:
        return "POST", "/api/v1/controls", {"json": {"project_id": project_id, **fields}}

    @staticmethod
    def update_control(control_id: str, changes: Json) -> Call:
        return "PATCH", f"/api/v1/controls/{control_id}", {"json": changes}

    @staticmethod
    def retire_control(control_id: str) -> Call:
        return "DELETE", f"/api/v1/controls/{control_id}", {}

    @staticmethod
    def control_history(control_id: str) -> Call:
        return "GET", f"/api/v1/controls/{control_id}/history", {}

    @staticmethod
    def register_evaluator(project_id: str, evaluator: CustomEvaluator) -> Call:
        return "POST", "/api/v1/evaluators", {"json": evaluator.to_request(project_id)}

    @staticmethod
    def evaluate(
        project_id: str, names: list[str], query: str, response: str, context: str | None, run_id: str | None
    ) -> Call:
        body = {
            "project_id": project_id,
            "evaluators": names,
            "query": query,
            "response": response,
            "context": context,
            "run_id": run_id,
        }
        return "POST", "/api/v1/evaluations", {"json": body}

    @staticmethod
    def evaluations(project_id: str, **filters: Any) -> Call:
        return "GET", "/api/v1/evaluations", {"params": _params(project_id=project_id, **filters)}

    @staticmethod
    def traces(project_id: str, **filters: Any) -> Call:
        return "GET", "/api/v1/traces", {"params": _params(project_id=project_id, **filters)}

    @staticmethod
    def get_trace(trace_id: str) -> Call:
        return "GET", f"/api/v1/traces/{trace_id}", {}

    @staticmethod
    def get_session(session_id: str) -> Call:
        return "GET", f"/api/v1/sessions/{session_id}", {}

    @staticmethod
    def job_counts(project_id: str, run_id: str | None) -> Call:
        return "GET", "/api/v1/jobs/counts", {"params": _params(project_id=project_id, run_id=run_id)}

    @staticmethod
    def projects() -> Call:
        return "GET", "/api/v1/projects", {}

    @staticmethod
    def golden_sets(project_id: str) -> Call:
        return "GET", "/api/v1/golden-sets", {"params": {"project_id": project_id}}

    @staticmethod
    def create_golden_set(project_id: str, name: str, fields: Json) -> Call:
        return "POST", "/api/v1/golden-sets", {"json": {"project_id": project_id, "name": name, **fields}}

    @staticmethod
    def add_golden_version(golden_set_id: str, fields: Json) -> Call:
        return "POST", f"/api/v1/golden-sets/{golden_set_id}/versions", {"json": fields}

    @staticmethod
    def start_golden_run(
        golden_set_id: str,
        evaluators: Sequence[str | Json],
        memory: bool,
        version: int | None,
        prices: Json | None = None,
        requests_per_second: float | None = None,
    ) -> Call:
        body: Json = {"evaluators": list(evaluators), "memory": memory}
        if version is not None:
            body["version"] = version
        if prices:
            body["prices"] = prices
        if requests_per_second is not None:
            body["requests_per_second"] = requests_per_second
        return "POST", f"/api/v1/golden-sets/{golden_set_id}/runs", {"json": body}

    @staticmethod
    def golden_run(golden_set_id: str, run_id: str) -> Call:
        return "GET", f"/api/v1/golden-sets/{golden_set_id}/runs/{run_id}", {}


def _names(evaluators: Sequence[str | CustomEvaluator]) -> tuple[list[str], list[CustomEvaluator]]:
    """Evaluator names, and the custom ones among them (to register first)."""
    custom = [e for e in evaluators if isinstance(e, CustomEvaluator)]
    return [e.name if isinstance(e, CustomEvaluator) else e for e in evaluators], custom


def _api_key(api_key: str | None) -> str:
    api_key = api_key or os.environ.get("CASEWORK_API_KEY")
    if not api_key:
        raise Unauthenticated("No API key: pass api_key= or set CASEWORK_API_KEY.")
    return api_key


def _base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("CASEWORK_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


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
        self.api_key = _api_key(api_key)
        self.base_url = _base_url(base_url)
        self._http = httpx.Client(
            base_url=self.base_url, headers={"x-api-key": self.api_key}, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, call: Call) -> Any:
        method, path, kwargs = call
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"Cannot reach Casework at {self.base_url}: {exc}") from exc
        return _checked(response).json()

    def _pages(self, call: Call, key: str) -> Iterator[Json]:
        method, path, kwargs = call
        params = dict(kwargs["params"])
        while True:
            page = self._call((method, path, {"params": params}))
            yield from page[key]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    # --- workspace, projects, runs ---------------------------------------------------------------------

    def workspace(self) -> Json:
        """The workspace of this key: a cheap way to check the key and the server."""
        return cast(Json, self._call(_Requests.workspace()))

    def project(self, name: str) -> Json:
        """Get or create a project by name."""
        return cast(Json, self._call(_Requests.project(name)))

    def run(self, project_id: str, name: str, *, evaluators: Sequence[str] | None = None) -> Json:
        """Get or create a run of a project by name; ``evaluators`` judge its traced interactions."""
        return cast(Json, self._call(_Requests.run(project_id, name, evaluators)))

    # --- reviews -------------------------------------------------------------------------------------------

    def enqueue_review(
        self, project_id: str, *, evaluator_type: str, query: str, response: str, **fields: Any
    ) -> Json:
        """Queue a review by hand (``options``, ``context``, ``priority``, ``span_id`` ... as keywords)."""
        return cast(
            Json, self._call(_Requests.enqueue_review(project_id, evaluator_type, query, response, fields))
        )

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
        call = _Requests.reviews(
            project_id,
            status=status,
            evaluator_type=evaluator_type,
            tag=tag,
            created_after=created_after,
            limit=page_size,
        )
        return self._pages(call, "reviews")

    def get_review(self, review_id: str) -> Json:
        return cast(Json, self._call(_Requests.get_review(review_id)))

    def submit_feedback(
        self, review_id: str, *, classification: str, reasoning: str, reviewer: str, tags: Sequence[str] = ()
    ) -> Json:
        """Decide a review. ``reasoning`` becomes evaluation memory: write it as you would coach a junior."""
        return cast(
            Json, self._call(_Requests.submit_feedback(review_id, classification, reasoning, reviewer, tags))
        )

    def bulk_feedback(self, feedback: Iterable[Json]) -> Json:
        """Up to 1,000 decisions, each applied on its own: ``{"accepted", "rejected", "results"}``."""
        return cast(Json, self._call(_Requests.bulk_feedback(feedback)))

    def export_reviews(self, project_id: str, *, status: str = "pending", **filters: Any) -> Iterator[Json]:
        """Every matching review, streamed (JSON Lines on the wire): memory stays flat."""
        method, path, kwargs = _Requests.export_reviews(project_id, status, filters)
        with self._http.stream(method, path, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                _checked(response)
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)

    # --- controls ------------------------------------------------------------------------------------------

    def iter_controls(self, project_id: str, *, page_size: int = 100, **filters: Any) -> Iterator[Json]:
        """A project's evaluation memory (filters: evaluator_type, tag, reviewer, status, q, created_after)."""
        return self._pages(_Requests.controls(project_id, limit=page_size, **filters), "controls")

    def get_control(self, control_id: str) -> Json:
        return cast(Json, self._call(_Requests.get_control(control_id)))

    def create_control(self, project_id: str, **fields: Any) -> Json:
        """A control written up front (evaluator_type, classification, reasoning, reviewer, tags ...)."""
        return cast(Json, self._call(_Requests.create_control(project_id, fields)))

    def update_control(self, control_id: str, **changes: Any) -> Json:
        """A new version with ``classification``, ``reasoning``, ``tags`` or ``status`` changed."""
        return cast(Json, self._call(_Requests.update_control(control_id, changes)))

    def retire_control(self, control_id: str) -> Json:
        return cast(Json, self._call(_Requests.retire_control(control_id)))

    def control_history(self, control_id: str) -> list[Json]:
        return cast(list[Json], self._call(_Requests.control_history(control_id))["versions"])

    # --- evaluators, evaluations, traces -----------------------------------------------------------------

    def register_evaluator(self, project_id: str, evaluator: CustomEvaluator) -> Json:
        return cast(Json, self._call(_Requests.register_evaluator(project_id, evaluator)))

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
        names, custom = _names(evaluators)
        for evaluator in custom:
            self.register_evaluator(project_id, evaluator)
        call = _Requests.evaluate(project_id, names, query, response, context, run_id)
        return cast(list[Json], self._call(call)["evaluations"])

    def iter_evaluations(self, project_id: str, *, page_size: int = 100, **filters: Any) -> Iterator[Json]:
        """Newest first (filters: evaluator_type, run_id)."""
        return self._pages(_Requests.evaluations(project_id, limit=page_size, **filters), "evaluations")

    def iter_traces(self, project_id: str, *, page_size: int = 100, **filters: Any) -> Iterator[Json]:
        """Newest first (filters: run_id, session_id)."""
        return self._pages(_Requests.traces(project_id, limit=page_size, **filters), "traces")

    def get_trace(self, trace_id: str) -> Json:
        """A trace with its span tree."""
        return cast(Json, self._call(_Requests.get_trace(trace_id)))

    def get_session(self, session_id: str) -> Json:
        """A session's conversation, in order."""
        return cast(Json, self._call(_Requests.get_session(session_id)))

    def job_counts(self, project_id: str, *, run_id: str | None = None) -> Json:
        """``{"queued", "running", "done", "failed"}``: evaluation jobs of a project (or run)."""
        return cast(Json, self._call(_Requests.job_counts(project_id, run_id)))

    # --- golden sets ---------------------------------------------------------------------------------------

    def projects(self) -> list[Json]:
        return cast(list[Json], self._call(_Requests.projects())["projects"])

    def golden_sets(self, project_id: str) -> list[Json]:
        return cast(list[Json], self._call(_Requests.golden_sets(project_id))["golden_sets"])

    def create_golden_set(self, project_id: str, name: str, **fields: Any) -> Json:
        """A new golden set: ``items=[{"query", "response", "expected", ...}]`` and/or ``from_reviews={...}``,
        ``thresholds={"kappa": {">=": 0.6}}``."""
        return cast(Json, self._call(_Requests.create_golden_set(project_id, name, fields)))

    def add_golden_version(self, golden_set_id: str, **fields: Any) -> Json:
        """The set's next version: ``items``, ``from_reviews``, ``mode`` ("add" or "replace")."""
        return cast(Json, self._call(_Requests.add_golden_version(golden_set_id, fields)))

    def start_golden_run(
        self,
        golden_set_id: str,
        evaluators: Sequence[str | Json],
        *,
        memory: bool = True,
        version: int | None = None,
        prices: Json | None = None,
        requests_per_second: float | None = None,
    ) -> Json:
        """Queue a regression run; poll :meth:`golden_run`. ``evaluators``: names or "name:version", or
        ``{"name": ..., "model": "other-model"}``, or a draft ``{"definition": {...}}`` (not saved); ``prices``:
        ``{"model": {"prompt": 0.15, "completion": 0.6}}`` in dollars per million tokens, for the cost;
        ``requests_per_second``: the run's judge requests a second at most (per worker process)."""
        return cast(
            Json,
            self._call(
                _Requests.start_golden_run(
                    golden_set_id, evaluators, memory, version, prices, requests_per_second
                )
            ),
        )

    def golden_run(self, golden_set_id: str, run_id: str) -> Json:
        return cast(Json, self._call(_Requests.golden_run(golden_set_id, run_id)))


class AsyncClient:
    """:class:`Client`, for asyncio code: the same methods, awaited (the ``iter_*`` ones are async iterators)."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_key = _api_key(api_key)
        self.base_url = _base_url(base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers={"x-api-key": self.api_key}, timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, call: Call) -> Any:
        method, path, kwargs = call
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"Cannot reach Casework at {self.base_url}: {exc}") from exc
        return _checked(response).json()

    async def _pages(self, call: Call, key: str) -> AsyncIterator[Json]:
        method, path, kwargs = call
        params = dict(kwargs["params"])
        while True:
            page = await self._call((method, path, {"params": params}))
            for item in page[key]:
                yield item
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    async def workspace(self) -> Json:
        return cast(Json, await self._call(_Requests.workspace()))

    async def project(self, name: str) -> Json:
        return cast(Json, await self._call(_Requests.project(name)))

    async def run(self, project_id: str, name: str, *, evaluators: Sequence[str] | None = None) -> Json:
        return cast(Json, await self._call(_Requests.run(project_id, name, evaluators)))

    async def enqueue_review(
        self, project_id: str, *, evaluator_type: str, query: str, response: str, **fields: Any
    ) -> Json:
        call = _Requests.enqueue_review(project_id, evaluator_type, query, response, fields)
        return cast(Json, await self._call(call))

    def iter_reviews(
        self,
        project_id: str,
        *,
        status: str = "pending",
        evaluator_type: str | None = None,
        tag: str | None = None,
        created_after: datetime | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Json]:
        call = _Requests.reviews(
            project_id,
            status=status,
            evaluator_type=evaluator_type,
            tag=tag,
            created_after=created_after,
            limit=page_size,
        )
        return self._pages(call, "reviews")

    async def get_review(self, review_id: str) -> Json:
        return cast(Json, await self._call(_Requests.get_review(review_id)))

    async def submit_feedback(
        self, review_id: str, *, classification: str, reasoning: str, reviewer: str, tags: Sequence[str] = ()
    ) -> Json:
        call = _Requests.submit_feedback(review_id, classification, reasoning, reviewer, tags)
        return cast(Json, await self._call(call))

    async def bulk_feedback(self, feedback: Iterable[Json]) -> Json:
        return cast(Json, await self._call(_Requests.bulk_feedback(feedback)))

    async def export_reviews(
        self, project_id: str, *, status: str = "pending", **filters: Any
    ) -> AsyncIterator[Json]:
        method, path, kwargs = _Requests.export_reviews(project_id, status, filters)
        async with self._http.stream(method, path, **kwargs) as response:
            if response.status_code >= 400:
                await response.aread()
                _checked(response)
            async for line in response.aiter_lines():
                if line:
                    yield json.loads(line)

    def iter_controls(self, project_id: str, *, page_size: int = 100, **filters: Any) -> AsyncIterator[Json]:
        return self._pages(_Requests.controls(project_id, limit=page_size, **filters), "controls")

    async def get_control(self, control_id: str) -> Json:
        return cast(Json, await self._call(_Requests.get_control(control_id)))

    async def create_control(self, project_id: str, **fields: Any) -> Json:
        return cast(Json, await self._call(_Requests.create_control(project_id, fields)))

    async def update_control(self, control_id: str, **changes: Any) -> Json:
        return cast(Json, await self._call(_Requests.update_control(control_id, changes)))

    async def retire_control(self, control_id: str) -> Json:
        return cast(Json, await self._call(_Requests.retire_control(control_id)))

    async def control_history(self, control_id: str) -> list[Json]:
        return cast(list[Json], (await self._call(_Requests.control_history(control_id)))["versions"])

    async def register_evaluator(self, project_id: str, evaluator: CustomEvaluator) -> Json:
        return cast(Json, await self._call(_Requests.register_evaluator(project_id, evaluator)))

    async def evaluate(
        self,
        project_id: str,
        evaluators: Sequence[str | CustomEvaluator],
        *,
        query: str,
        response: str,
        context: str | None = None,
        run_id: str | None = None,
    ) -> list[Json]:
        names, custom = _names(evaluators)
        for evaluator in custom:
            await self.register_evaluator(project_id, evaluator)
        call = _Requests.evaluate(project_id, names, query, response, context, run_id)
        return cast(list[Json], (await self._call(call))["evaluations"])

    def iter_evaluations(
        self, project_id: str, *, page_size: int = 100, **filters: Any
    ) -> AsyncIterator[Json]:
        return self._pages(_Requests.evaluations(project_id, limit=page_size, **filters), "evaluations")

    def iter_traces(self, project_id: str, *, page_size: int = 100, **filters: Any) -> AsyncIterator[Json]:
        return self._pages(_Requests.traces(project_id, limit=page_size, **filters), "traces")

    async def get_trace(self, trace_id: str) -> Json:
        return cast(Json, await self._call(_Requests.get_trace(trace_id)))

    async def get_session(self, session_id: str) -> Json:
        return cast(Json, await self._call(_Requests.get_session(session_id)))

    async def job_counts(self, project_id: str, *, run_id: str | None = None) -> Json:
        return cast(Json, await self._call(_Requests.job_counts(project_id, run_id)))

    async def projects(self) -> list[Json]:
        return cast(list[Json], (await self._call(_Requests.projects()))["projects"])

    async def golden_sets(self, project_id: str) -> list[Json]:
        return cast(list[Json], (await self._call(_Requests.golden_sets(project_id)))["golden_sets"])

    async def create_golden_set(self, project_id: str, name: str, **fields: Any) -> Json:
        return cast(Json, await self._call(_Requests.create_golden_set(project_id, name, fields)))

    async def add_golden_version(self, golden_set_id: str, **fields: Any) -> Json:
        return cast(Json, await self._call(_Requests.add_golden_version(golden_set_id, fields)))

    async def start_golden_run(
        self,
        golden_set_id: str,
        evaluators: Sequence[str | Json],
        *,
        memory: bool = True,
        version: int | None = None,
        prices: Json | None = None,
        requests_per_second: float | None = None,
    ) -> Json:
        return cast(
            Json,
            await self._call(
                _Requests.start_golden_run(
                    golden_set_id, evaluators, memory, version, prices, requests_per_second
                )
            ),
        )

    async def golden_run(self, golden_set_id: str, run_id: str) -> Json:
        return cast(Json, await self._call(_Requests.golden_run(golden_set_id, run_id)))


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
