"""The job kinds of evaluation: judging a traced interaction, and the memory pass after a new control."""

from __future__ import annotations

from casework.errors import EvaluatorNotFound
from casework.services.auth import Principal, Role
from casework.services.evaluations import store_job_evaluation
from casework.services.jobs import ClaimedJob
from casework.worker.kinds import GiveUp, JobKind, Retry
from casework.worker.runner import EvaluationRunner


def worker_principal(workspace_id: str) -> Principal:
    """Who background work acts as, in audit records and workspace checks."""
    return Principal(key_id="worker", workspace_id=workspace_id, role=Role.admin, label="casework-worker")


def evaluation_kinds(runner: EvaluationRunner) -> list[JobKind]:
    async def evaluate(job: ClaimedJob) -> None:
        if job.interaction is None or job.evaluator_type is None or job.project_id is None:
            raise GiveUp("the span holds no interaction to evaluate")
        assert job.workspace_id is not None
        principal = worker_principal(job.workspace_id)
        try:
            [evaluator] = await runner.current_evaluators(principal, job.project_id, [job.evaluator_type])
        except EvaluatorNotFound as exc:
            raise GiveUp(str(exc)) from exc
        draft = await runner.run_one(evaluator, job.interaction)
        if draft.error is not None:
            raise Retry(draft.error)
        await runner.writes.write(
            store_job_evaluation,
            claimed=job,
            draft=draft,
            principal=principal,
            event_sample=runner.evaluation_event_sample,
        )

    async def memory_pass(job: ClaimedJob) -> None:
        await runner.memory_pass(
            control_ids=job.payload.get("control_ids", []), review_ids=job.payload.get("review_ids", [])
        )

    async def replay(job: ClaimedJob) -> None:
        ids = job.payload.get("review_ids") or [job.payload["review_id"]]
        for review_id in ids:  # in the order they were decided: each from what came before it
            await runner.replay(str(review_id))

    return [
        JobKind("evaluate", evaluate, lane="evaluate", finishes_itself=True),
        JobKind("memory_pass", memory_pass),
        JobKind("memory.replay", replay),
    ]
