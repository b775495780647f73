"""Text similarity in [0, 1] that needs no model: the cosine of binary word vectors (Otsuka-Ochiai)."""

from __future__ import annotations

import math

from casework.db.search import WORD

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
    """The words of ``text`` (as full-text search splits them) that are not stopwords. Called for every
    candidate of every retrieval, so done with set operations rather than a loop."""
    return frozenset(WORD.findall(text.lower())) - STOPWORDS


def ochiai(left: frozenset[str], right: frozenset[str]) -> float:
    if not left or not right:
        return 0.0
    return len(left & right) / math.sqrt(len(left) * len(right))


def control_similarity(
    interaction: frozenset[str], *, control_interaction: frozenset[str], control_notes: frozenset[str]
) -> float:
    """How close a new interaction is to a control: mostly to the interaction the expert decided on, partly to
    what the expert wrote (reasoning and tags). A control written up front, with no interaction, is compared
    by its notes alone."""
    if not control_interaction:
        return ochiai(interaction, control_notes)
    return 0.8 * ochiai(interaction, control_interaction) + 0.2 * ochiai(interaction, control_notes)
