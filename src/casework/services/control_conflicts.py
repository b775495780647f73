"""Policy ambiguity in memory: active controls of one evaluator whose interactions are near-identical but whose
classifications differ. The judge reads both in {memories}; a lead should retire one or write a clarifying one."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import Control
from casework.memory.similarity import Words, harmonic, ochiai
from casework.services.auth import Principal
from casework.services.projects import get_project

# Near-identical: both the query and the response must share most of their words.
CONFLICT_THRESHOLD = 0.9
# The newest controls of each evaluator compared pairwise (a bounded cost on a large memory).
MAX_CONTROLS_PER_EVALUATOR = 2000


@dataclass(frozen=True)
class Conflict:
    evaluator_type: str
    similarity: float
    first: Control
    second: Control


def interaction_similarity(first: Words, second: Words) -> float:
    """How alike two decided interactions are: the harmonic mean of their queries' and responses' similarity."""
    return harmonic(ochiai(first.query, second.query), ochiai(first.response, second.response))


def find_conflicts(
    session: Session, *, principal: Principal, project_id: str, threshold: float = CONFLICT_THRESHOLD
) -> list[Conflict]:
    """Pairs of active controls of the same evaluator, on near-identical interactions, classified differently;
    most similar first."""
    get_project(session, workspace_id=principal.workspace_id, project_id=project_id)
    controls = session.execute(
        select(Control)
        .where(Control.project_id == project_id, Control.status == "active", Control.query.is_not(None))
        .order_by(Control.created_at.desc(), Control.id)
    ).scalars()
    by_evaluator: dict[str, list[tuple[Control, Words]]] = defaultdict(list)
    for control in controls:
        kept = by_evaluator[control.evaluator_type]
        if len(kept) < MAX_CONTROLS_PER_EVALUATOR:
            kept.append((control, Words.of(control.query, control.response)))
    found = []
    for evaluator_type, kept in by_evaluator.items():
        for i, (first, first_words) in enumerate(kept):
            for second, second_words in kept[i + 1 :]:
                if first.classification == second.classification:
                    continue
                score = interaction_similarity(first_words, second_words)
                if score >= threshold:
                    older, newer = sorted((first, second), key=lambda c: (c.created_at, c.id))
                    found.append(Conflict(evaluator_type, round(score, 4), older, newer))
    return sorted(found, key=lambda c: (-c.similarity, c.first.id, c.second.id))
