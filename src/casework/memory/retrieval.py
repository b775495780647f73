"""Retrieve the controls relevant to an interaction, and render them as the {memories} text."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Control, ControlEmbedding
from casework.db.search import TermFrequencies, candidate_control_ids
from casework.db.types import utcnow
from casework.memory.similarity import content_words, control_similarity

DEFAULT_K = 5
DEFAULT_MIN_SCORE = 0.15
CANDIDATES = 20
NO_MEMORIES = "No prior expert reviews."


@dataclass(frozen=True)
class Memory:
    control: Control
    score: float


@dataclass(frozen=True)
class Candidate:
    """A control full-text search found, with its word-overlap score and the text an embedding is made of."""

    control_id: str
    word_score: float
    text: str


def word_candidates(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str,
    query: str,
    response: str,
    frequencies: TermFrequencies | None = None,
) -> list[Candidate]:
    """Active controls of this project and evaluator sharing rare words with the interaction, scored by word
    overlap, unfiltered."""
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
    rows = session.execute(
        select(Control.id, Control.query, Control.response, Control.reasoning, Control.tags).where(
            Control.id.in_(ids)
        )
    )
    candidates = []
    for control_id, control_query, control_response, reasoning, tags in rows:
        score = control_similarity(
            interaction,
            control_interaction=content_words(f"{control_query or ''} {control_response or ''}"),
            control_notes=content_words(f"{reasoning} {' '.join(tags)}"),
        )
        text = "\n".join(part for part in (control_query, control_response, reasoning) if part)
        candidates.append(Candidate(control_id=control_id, word_score=round(score, 4), text=text))
    return candidates


def best(scores: dict[str, float], *, k: int, min_score: float) -> list[tuple[str, float]]:
    kept = sorted(
        ((cid, score) for cid, score in scores.items() if score >= min_score), key=lambda p: (-p[1], p[0])
    )
    return kept[:k]


def load_memories(session: Session, *, ranked: list[tuple[str, float]]) -> list[Memory]:
    """The controls of ``ranked`` (id, score), in that order."""
    scores = dict(ranked)
    controls = session.execute(select(Control).where(Control.id.in_(list(scores)))).scalars()
    memories = [Memory(control=control, score=round(scores[control.id], 4)) for control in controls]
    memories.sort(key=lambda memory: (-memory.score, memory.control.id))
    return memories


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
    """The ``k`` active controls of this project and evaluator most similar to the interaction by words, best
    first, each scoring at least ``min_score``. (With embeddings configured, the runner re-scores these
    candidates: casework.evaluators.runner.EvaluationRunner.memories.)"""
    candidates = word_candidates(
        session,
        project_id=project_id,
        evaluator_type=evaluator_type,
        query=query,
        response=response,
        frequencies=frequencies,
    )
    ranked = best({c.control_id: c.word_score for c in candidates}, k=k, min_score=min_score)
    return load_memories(session, ranked=ranked) if ranked else []


def cached_embeddings(session: Session, *, control_ids: list[str], model: str) -> dict[str, list[float]]:
    rows = session.execute(
        select(ControlEmbedding.control_id, ControlEmbedding.vector).where(
            ControlEmbedding.control_id.in_(control_ids), ControlEmbedding.model == model
        )
    )
    return {control_id: vector for control_id, vector in rows}


def store_embeddings(session: Session, *, vectors: dict[str, list[float]], model: str) -> None:
    for control_id, vector in vectors.items():
        insert_ignoring_conflict(
            session,
            ControlEmbedding,
            {"control_id": control_id, "model": model, "vector": vector, "created_at": utcnow()},
            conflict_columns=["control_id", "model"],
        )


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
