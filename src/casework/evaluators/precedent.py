"""The precedent judge: decides from the closest expert decisions alone, with no model.

Each retrieved control votes for its classification with the square of its similarity, so one near-identical
case outweighs several loose look-alikes; a prior of one uniform vote keeps a single weak precedent from
looking sure. The raw score is the winning share; memory's evidence turns it into a calibrated confidence and
says above which score the vote may decide alone (casework.memory.calibration).
"""

from __future__ import annotations

from collections import defaultdict

from casework.definitions import AMBIGUOUS, EvaluatorDefinition, Verdict
from casework.memory.retrieval import Memory

PRIOR_WEIGHT = 1.0


def precedent_verdict(definition: EvaluatorDefinition, memories: list[Memory]) -> Verdict:
    """The classification the similar controls support, with its raw score as confidence."""
    usable = [m for m in memories if m.control.classification in definition.options]
    if not usable:
        return Verdict(AMBIGUOUS, 0.0, "No similar expert decision to follow.")
    weights: dict[str, float] = defaultdict(float)
    closest: dict[str, float] = defaultdict(float)
    for memory in usable:
        weights[memory.control.classification] += memory.score**2
        closest[memory.control.classification] = max(closest[memory.control.classification], memory.score)
    winner = max(weights, key=lambda label: (weights[label], closest[label], label))
    prior = PRIOR_WEIGHT / len(definition.options)
    score = (weights[winner] + prior) / (sum(weights.values()) + PRIOR_WEIGHT)
    votes = ", ".join(
        f"{label} {weight:.2f}" for label, weight in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    explanation = (
        f"{len(usable)} similar expert decision(s), weighted by similarity squared: {votes}; the closest "
        f"{winner} precedent is {closest[winner]:.2f} similar."
    )
    return Verdict(winner, round(score, 4), explanation, model=None)
