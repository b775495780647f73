"""Similarity in [0, 1] that needs no model: the cosine of binary word vectors (Otsuka-Ochiai), field by field."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from casework.db.search import INDEXED_CHARS, WORD

# Words so common in English that sharing them says nothing about two texts.
STOPWORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "and",
        "any",
        "are",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "can",
        "could",
        "did",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "into",
        "its",
        "itself",
        "just",
        "let",
        "more",
        "most",
        "much",
        "must",
        "myself",
        "not",
        "now",
        "off",
        "once",
        "only",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "too",
        "under",
        "until",
        "very",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)


def content_words(text: str) -> frozenset[str]:
    """The words of ``text`` (as full-text search splits them; the first INDEXED_CHARS characters, as indexed)
    that are not stopwords. Called for every candidate of every retrieval, so done with set operations."""
    return frozenset(WORD.findall(text[:INDEXED_CHARS].lower())) - STOPWORDS


def ochiai(left: frozenset[str], right: frozenset[str]) -> float:
    """The cosine of two binary word vectors: shared words over the geometric mean of the sizes."""
    if not left or not right:
        return 0.0
    return len(left & right) / math.sqrt(len(left) * len(right))


@dataclass(frozen=True)
class Words:
    """An interaction's words by field, as memory compares them."""

    query: frozenset[str]
    response: frozenset[str]

    @classmethod
    def of(cls, query: str | None, response: str | None) -> Words:
        return cls(content_words(query or ""), content_words(response or ""))

    @cached_property  # compared with every candidate: computed once
    def all(self) -> frozenset[str]:
        return self.query | self.response


@dataclass(frozen=True)
class ControlWords:
    interaction: Words
    notes: frozenset[str]  # the reasoning and tags

    @classmethod
    def of(cls, query: str | None, response: str | None, reasoning: str, tags: list[str]) -> ControlWords:
        return cls(Words.of(query, response), content_words(f"{reasoning} {' '.join(tags)}"))

    @cached_property  # compared with every candidate: computed once
    def all(self) -> frozenset[str]:
        return self.interaction.all | self.notes


def control_terms(query: str | None, response: str | None, reasoning: str, tags: list[str]) -> frozenset[str]:
    """Every word of a control that memory's postings hold (its word statistics count these)."""
    return ControlWords.of(query, response, reasoning, tags).all


# How much what the expert wrote counts, beside the interaction they decided on.
NOTES_WEIGHT = 0.15


def harmonic(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a > 0 and b > 0 else 0.0


def similarity(interaction: Words, control: ControlWords) -> float:
    """How close a new interaction is to a control, in [0, 1].

    What is judged is the response to the query, so both must be alike: the harmonic mean of the query's
    similarity and the response's (one refusing and one complying share a question, not a verdict; a
    look-alike question of another meaning shares neither). What the expert wrote (reasoning, tags) adds a
    little. A control written up front, with no interaction, is compared by what it says alone.
    """
    notes = ochiai(interaction.all, control.notes)
    if not control.interaction.query and not control.interaction.response:
        return notes
    pair = harmonic(
        ochiai(interaction.query, control.interaction.query),
        ochiai(interaction.response, control.interaction.response),
    )
    return (1 - NOTES_WEIGHT) * pair + NOTES_WEIGHT * notes


def scorer(interaction: Words) -> Callable[[ControlWords], float]:
    """``similarity(interaction, control)`` for many controls: the same arithmetic (so the same floats), with the
    interaction's side worked out once and no call per field (retrieval scores hundreds of candidates)."""
    query, response, every = interaction.query, interaction.response, interaction.all
    n_query, n_response, n_every = len(query), len(response), len(every)
    sqrt = math.sqrt

    def score(control: ControlWords) -> float:
        held = control.notes
        n_held = len(held)
        notes = len(every & held) / sqrt(n_every * n_held) if n_every and n_held else 0.0
        their = control.interaction
        if not their.query and not their.response:
            return notes
        n = len(their.query)
        a = len(query & their.query) / sqrt(n_query * n) if n_query and n else 0.0
        n = len(their.response)
        b = len(response & their.response) / sqrt(n_response * n) if n_response and n else 0.0
        pair = 2 * a * b / (a + b) if a > 0 and b > 0 else 0.0
        return (1 - NOTES_WEIGHT) * pair + NOTES_WEIGHT * notes

    return score


def bound_unseen(interaction: Words, searched: frozenset[str]) -> float:
    """The highest similarity a control that holds none of ``searched`` could have (so retrieval can stop
    searching once its k-th best beats this). Ochiai with ``m`` shared words of an ``n``-word side is at most
    sqrt(m / n), and such a control shares only words not searched."""

    def most(words: frozenset[str]) -> float:
        return math.sqrt(len(words - searched) / len(words)) if words else 0.0

    pair = harmonic(most(interaction.query), most(interaction.response))
    return (1 - NOTES_WEIGHT) * pair + NOTES_WEIGHT * most(interaction.all)
