"""The exact messages the LLM judge received for an evaluation and its raw answers, kept with it (bounded in
size), so that an engineer can see why a verdict came out as it did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from casework.db.models import JudgeCall
from casework.db.types import utcnow

if TYPE_CHECKING:
    from casework.definitions import JudgeExchange
    from casework.services.evaluations import EvaluationDraft

# Each message and answer is kept up to this many characters: a prompt quoting a megabyte of trace text must
# not make every evaluation row a megabyte.
TEXT_LIMIT = 20_000


def bounded(text: str, limit: int = TEXT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [{len(text) - limit:,} more characters not kept]"


def judge_call_rows(evaluation_id: str, draft: EvaluationDraft) -> list[dict[str, Any]]:
    """One row per step that asked the LLM judge: the first evaluation, and the re-evaluation if any; a step
    where the judge failed is kept too, with its last raw reply (the evaluation has the error)."""
    steps: list[tuple[str, str | None, JudgeExchange | None]] = []
    if draft.first is not None:
        steps.append(("evaluation", draft.first.model, draft.first.exchange))
    if draft.reevaluated and draft.final is not None:
        steps.append(("reevaluation", draft.final.model, draft.final.exchange))
    if draft.failed_exchange is not None:
        steps.append(
            ("reevaluation" if draft.first is not None else "evaluation", None, draft.failed_exchange)
        )
    now = utcnow()
    return [
        {
            "evaluation_id": evaluation_id,
            "step": step,
            "model": model,
            "messages": [{"role": role, "content": bounded(content)} for role, content in exchange.messages],
            "answer": bounded(exchange.answer),
            "created_at": now,
        }
        for step, model, exchange in steps
        if exchange is not None  # the precedent judge asks no model
    ]


def store_judge_calls(session: Session, evaluations: Sequence[tuple[str, EvaluationDraft]]) -> None:
    rows = [row for evaluation_id, draft in evaluations for row in judge_call_rows(evaluation_id, draft)]
    if rows:
        table: Table = JudgeCall.__table__  # type: ignore[assignment]
        session.execute(insert(table), rows)
