"""``casework.init``: point an application's OpenTelemetry traces at Casework, with its evaluators attached.

    session = casework.init(project_name="hitl-demo", run_name="feedback-loop-demo",
                            evaluators=["correctness", policy_evaluator])
    OpenAIInstrumentor().instrument()   # any OpenInference instrumentor; its spans go to Casework

Every LLM span becomes an interaction that the run's evaluators judge on the server; ambiguous verdicts land in
the review queue by themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from casework.errors import CaseworkError, PermissionDenied, ServiceUnavailable, Unauthenticated
from casework.sdk.client import Client
from casework.sdk.evaluators import CustomEvaluator


class Session:
    """What ``casework.init`` set up: the project, the run, the client, and the tracer provider."""

    def __init__(
        self, client: Client, project: dict[str, str], run: dict[str, str], provider: TracerProvider
    ):
        self.client = client
        self.project_id: str = project["id"]
        self.project_name: str = project["name"]
        self.run_id: str = run["id"]
        self.run_name: str = run["name"]
        self.tracer_provider = provider

    def flush(self, timeout: float = 60.0) -> None:
        """Send every span recorded so far, then wait until the server has evaluated them all (so the reviews
        they cause are in the queue when this returns). Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        if not self.tracer_provider.force_flush(int(timeout * 1000)):
            raise TimeoutError(f"spans were not all exported to {self.client.base_url} within {timeout} s")
        while True:
            counts = self.client.job_counts(self.project_id, run_id=self.run_id)
            if counts["queued"] + counts["running"] == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{counts['queued'] + counts['running']} evaluations still pending after {timeout} s"
                )
            time.sleep(0.1)

    def shutdown(self) -> None:
        """Send what is left and stop exporting."""
        self.tracer_provider.shutdown()
        self.client.close()


def init(
    project_name: str,
    run_name: str | None = None,
    evaluators: Sequence[str | CustomEvaluator] = (),
    api_key: str | None = None,
    base_url: str | None = None,
    workspace_id: str | None = None,
    *,
    set_global: bool = True,
) -> Session:
    """Connect to Casework: check the key, get or create the project and run, register the custom evaluators
    and attach them (and the built-ins named by string) to the run, and install an OpenTelemetry tracer
    provider that exports to the server with the project and run as resource attributes.

    Reads ``CASEWORK_API_KEY``, ``CASEWORK_BASE_URL`` and ``CASEWORK_WORKSPACE_ID`` unless given. A wrong key
    or an unreachable server fails here, with a message that says which.
    """
    client = Client(api_key=api_key, base_url=base_url)
    try:
        workspace = client.workspace()
    except ServiceUnavailable as exc:
        client.close()
        raise ServiceUnavailable(
            f"Casework is not reachable at {client.base_url} (CASEWORK_BASE_URL): {exc.message}"
        ) from exc
    except Unauthenticated as exc:
        client.close()
        raise Unauthenticated(
            f"Casework at {client.base_url} rejected the API key (CASEWORK_API_KEY): {exc.message}"
        ) from exc
    expected_workspace = workspace_id or os.environ.get("CASEWORK_WORKSPACE_ID")
    if expected_workspace and expected_workspace not in (workspace["id"], workspace["name"]):
        client.close()
        raise PermissionDenied(
            f"This API key belongs to workspace {workspace['name']!r} ({workspace['id']}), "
            f"not {expected_workspace!r} (CASEWORK_WORKSPACE_ID).",
            details={"workspace_id": workspace["id"]},
        )
    try:
        project = client.project(project_name)
        custom = [e for e in evaluators if isinstance(e, CustomEvaluator)]
        for evaluator in custom:
            client.register_evaluator(project["id"], evaluator)
        names = [e.name if isinstance(e, CustomEvaluator) else e for e in evaluators]
        run = client.run(project["id"], run_name or "default", evaluators=names or None)
    except CaseworkError:
        client.close()
        raise
    resource = Resource.create(
        {
            "service.name": project_name,
            "openinference.project.name": project_name,
            "casework.project_id": project["id"],
            "casework.run_id": run["id"],
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{client.base_url}/v1/traces", headers={"x-api-key": client.api_key})
        )
    )
    if set_global:
        trace.set_tracer_provider(provider)
    return Session(client, project, run, provider)
