"""Retrieve the controls relevant to an interaction, and render them as the {memories} text."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.models import Control
from casework.db.search import TermFrequencies, candidate_control_ids
from casework.memory.similarity import content_words, control_similarity

DEFAULT_K = 5
DEFAULT_MIN_SCORE = 0.15
CANDIDATES = 20
NO_MEMORIES = "No prior expert reviews."


@dataclass(frozen=True)
class Memory:
    control: Control
    score: float


def retrieve(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str,
    query: str,
    response: str,
    k: int = DEFAULT_K,
    min_score: float = DEFAULT_MIN_SCORE,
    frequencies: TermFrequencies | None = None,
) -> list[Memory]:
    """The ``k`` active controls of this project and evaluator most similar to the interaction, best first,
    each scoring at least ``min_score``. Full-text search finds candidates; similarity orders them."""
    interaction = content_words(f"{query} {response}")
    ids = candidate_control_ids(
        session,
        project_id=project_id,
        evaluator_type=evaluator_type,
        terms=sorted(interaction),
        limit=CANDIDATES,
        frequencies=frequencies,
    )
    if not ids:
        return []
    # Score from the text columns alone; whole controls are loaded only for the k kept.
    texts = session.execute(
        select(Control.id, Control.query, Control.response, Control.reasoning, Control.tags).where(
            Control.id.in_(ids)
        )
    )
    scores = []
    for control_id, control_query, control_response, reasoning, tags in texts:
        score = control_similarity(
            interaction,
            control_interaction=content_words(f"{control_query or ''} {control_response or ''}"),
            control_notes=content_words(f"{reasoning} {' '.join(tags)}"),
        )
        if score >= min_score:
            scores.append((round(score, 4), control_id))
    scores.sort(key=lambda pair: (-pair[0], pair[1]))
    kept = {control_id: score for score, control_id in scores[:k]}
    controls = session.execute(select(Control).where(Control.id.in_(list(kept)))).scalars()
    memories = [Memory(control=control, score=kept[control.id]) for control in controls]
    memories.sort(key=lambda memory: (-memory.score, memory.control.id))
    return memories


def format_memories(memories: list[Memory]) -> str:
    """The {memories} text, one entry per control, as the tutorial shows it::

    - [2026-03-27] Reviewer: compliance@bank.example | Classification: non_compliant
      "The customer referenced 'guaranteed returns' ...
      ... rather than corrective."
    """
    if not memories:
        return NO_MEMORIES
    entries = []
    for memory in memories:
        control = memory.control
        header = f"- [{control.created_at:%Y-%m-%d}] Reviewer: {control.reviewer} | Classification: {control.classification}"
        quoted = textwrap.fill(
            f'"{control.reasoning.strip()}"',
            width=78,
            initial_indent="  ",
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        entries.append(f"{header}\n{quoted}")
    return "\n".join(entries)
