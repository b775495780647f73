"""The precedent judge: decides from the closest expert decisions alone, with no model."""

from __future__ import annotations

from collections import defaultdict

from casework.evaluators.definitions import EvaluatorDefinition
from casework.evaluators.judge import AMBIGUOUS, Verdict
from casework.memory.retrieval import Memory

# The similarity at which one matching precedent counts as fully applicable.
STRONG_SIMILARITY = 0.5


def precedent_verdict(definition: EvaluatorDefinition, memories: list[Memory]) -> Verdict:
    """The classification the similar controls support, weighted by similarity.

    confidence = (winning weight / all weight) x min(1, closest winning similarity / 0.5): ambiguous when no
    control is close enough, or when close ones disagree.
    """
    usable = [m for m in memories if m.control.classification in definition.options]
    if not usable:
        return Verdict(AMBIGUOUS, 0.0, "No similar expert decision to follow.")
    weights: dict[str, float] = defaultdict(float)
    closest: dict[str, float] = defaultdict(float)
    for memory in usable:
        weights[memory.control.classification] += memory.score
        closest[memory.control.classification] = max(closest[memory.control.classification], memory.score)
    winner = max(weights, key=lambda label: (weights[label], closest[label]))
    share = weights[winner] / sum(weights.values())
    confidence = round(share * min(1.0, closest[winner] / STRONG_SIMILARITY), 4)
    votes = ", ".join(
        f"{label} {weight:.2f}" for label, weight in sorted(weights.items(), key=lambda kv: -kv[1])
    )
    explanation = (
        f"{len(usable)} similar expert decision(s), weighted by similarity: {votes}; closest {winner} "
        f"precedent {closest[winner]:.2f} similar."
    )
    return Verdict(winner, confidence, explanation, model=None)
