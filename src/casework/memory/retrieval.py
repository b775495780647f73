"""Retrieve the controls relevant to an interaction, and render them as the {memories} text.

Retrieval is exact wherever it can be: it looks up the interaction's words in the postings of the
evaluator's active controls, rarest first (by memory's own word statistics, ``memory_terms``, exact for the
current memory), scores every control found with casework.memory.similarity, and stops as soon as no control
it has not found could score above the k-th best it has (or above the minimum score). So the controls it
returns are the ones scoring every control would return, and for a given memory they are the same in every
process. Only when the words left to look up are held by more controls than the candidate budget does it stop
short; the result then says ``exact: false``.
"""

from __future__ import annotations

import textwrap
from collections import OrderedDict
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from threading import Lock
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import Control, ControlEmbedding, MemoryTerm
from casework.db.search import control_versions_with_words
from casework.db.types import utcnow
from casework.memory.similarity import ControlWords, Words, bound_unseen, scorer

DEFAULT_K = 5
DEFAULT_MIN_SCORE = 0.1
DEFAULT_CANDIDATES = 2000
NO_MEMORIES = "No prior expert reviews."
# Words looked up per query: a few at a time, rarest first, re-checking the bound in between.
WORDS_PER_LOOKUP = 4


@dataclass(frozen=True)
class MemorySettings:
    """How many controls, how close, and how much searching: per evaluator (its memory_* fields)."""

    k: int = DEFAULT_K
    min_score: float = DEFAULT_MIN_SCORE
    candidates: int = DEFAULT_CANDIDATES


@dataclass(frozen=True)
class Memory:
    control: Control
    score: float


@dataclass
class Retrieved:
    """The best ``k`` controls (at least ``min_score``), and every control that was scored on the way."""

    ranked: list[tuple[str, float]]
    scores: dict[str, float] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # only when asked for (retrieve_scored's ``texts``)
    exact: bool = True
    postings: int = 0


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class WordsCache(Generic[K, V]):
    """Recently compared texts' words, by a key that changes when the text does (a control's id and version, a
    review's id: its interaction never changes): tokenising a text costs more than comparing it."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: K, words: V) -> None:
        with self._lock:
            self._entries[key] = words
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


WORDS: WordsCache[tuple[str, int], ControlWords] = WordsCache()


def term_counts(
    session: Session, *, project_id: str, evaluator_type: str, terms: Collection[str]
) -> dict[str, int]:
    if not terms:
        return {}
    rows = session.execute(
        select(MemoryTerm.term, MemoryTerm.df).where(
            MemoryTerm.project_id == project_id,
            MemoryTerm.evaluator_type == evaluator_type,
            MemoryTerm.term.in_(sorted(terms)),
        )
    )
    return {term: df for term, df in rows}


def retrieve_scored(
    session: Session,
    *,
    project_id: str,
    evaluator_type: str,
    query: str,
    response: str,
    settings: MemorySettings = MemorySettings(),
    before: datetime | None = None,
    exclude: Collection[str] = (),
    texts: bool = False,
) -> Retrieved:
    """The ``settings.k`` best active controls of this project and evaluator for the interaction (created
    before ``before`` and not in ``exclude``, when given: how a past decision is replayed). ``texts``: keep
    every scored control's text too (for embedding them); otherwise a control's text is read only when its
    words are not cached."""
    words = Words.of(query, response)
    counts = term_counts(session, project_id=project_id, evaluator_type=evaluator_type, terms=words.all)
    # Words no active control holds cannot find one: they count as looked up already.
    searched = frozenset(term for term in words.all if not counts.get(term))
    to_search = sorted(searched ^ words.all, key=lambda term: (counts[term], term))
    found = Retrieved(ranked=[])
    excluded = set(exclude)
    position = 0
    while True:
        bound = bound_unseen(words, searched)
        best = sorted(found.scores.values(), reverse=True)
        if bound < settings.min_score or (len(best) >= settings.k and best[settings.k - 1] > bound):
            break
        if position == len(to_search):
            break
        batch: list[str] = []
        while position < len(to_search) and len(batch) < WORDS_PER_LOOKUP:
            term = to_search[position]
            if found.postings and found.postings + counts[term] > settings.candidates:
                break
            batch.append(term)
            found.postings += counts[term]
            position += 1
        if not batch:
            found.exact = False  # the words left are in more controls than the budget allows
            break
        versions = control_versions_with_words(
            session, project_id=project_id, evaluator_type=evaluator_type, words=batch, before=before
        )
        new = [(i, v) for i, v in versions if i not in found.scores and i not in excluded]
        if texts:
            _score_with_texts(session, words, [i for i, _ in new], found)
        else:
            _score(session, words, new, found)
        searched = searched | frozenset(batch)
    kept = [(cid, score) for cid, score in found.scores.items() if score >= settings.min_score]
    kept.sort(key=lambda pair: (-pair[1], pair[0]))
    found.ranked = kept[: settings.k]
    return found


def _score(session: Session, words: Words, versions: list[tuple[str, int]], found: Retrieved) -> None:
    """Score the controls (id, version) by their cached words, reading the text of those not cached only."""
    cached: list[tuple[str, ControlWords]] = []
    missing: list[str] = []
    for control_id, version in versions:
        control_words = WORDS.get((control_id, version))
        if control_words is None:
            missing.append(control_id)
        else:
            cached.append((control_id, control_words))
    if missing:
        rows = session.execute(
            select(
                Control.id, Control.version, Control.query, Control.response, Control.reasoning, Control.tags
            ).where(Control.id.in_(missing))
        )
        for control_id, version, query, response, reasoning, tags in rows:
            control_words = ControlWords.of(query, response, reasoning, list(tags))
            WORDS.put((control_id, version), control_words)
            cached.append((control_id, control_words))
    score = scorer(words)
    for control_id, control_words in cached:
        found.scores[control_id] = round(score(control_words), 4)


def _score_with_texts(session: Session, words: Words, ids: list[str], found: Retrieved) -> None:
    if not ids:
        return
    rows = session.execute(
        select(
            Control.id, Control.version, Control.query, Control.response, Control.reasoning, Control.tags
        ).where(Control.id.in_(ids))
    )
    score = scorer(words)
    for control_id, version, query, response, reasoning, tags in rows:
        key = (control_id, version)
        control_words = WORDS.get(key)
        if control_words is None:
            control_words = ControlWords.of(query, response, reasoning, list(tags))
            WORDS.put(key, control_words)
        found.scores[control_id] = round(score(control_words), 4)
        found.texts[control_id] = "\n".join(part for part in (query, response, reasoning) if part)


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
    settings: MemorySettings = MemorySettings(),
    before: datetime | None = None,
    exclude: Collection[str] = (),
) -> list[Memory]:
    """The best controls by words, best first. (With embeddings configured, the runner re-scores the
    candidates: casework.worker.runner.EvaluationRunner.remember.)"""
    found = retrieve_scored(
        session,
        project_id=project_id,
        evaluator_type=evaluator_type,
        query=query,
        response=response,
        settings=settings,
        before=before,
        exclude=exclude,
    )
    return load_memories(session, ranked=found.ranked) if found.ranked else []


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
