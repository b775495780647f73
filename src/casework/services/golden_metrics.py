"""What a golden-set run measures, per evaluator version, and the acceptance thresholds it is held to.

Pure functions over the run's verdicts: no database here. A verdict that is not one of the human answers'
labels (the judge said ``ambiguous``, or failed) counts as a disagreement, in accuracy and in Cohen's kappa
alike; the ambiguity rate is the share of verdicts that would have gone to people.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from casework.errors import ValidationFailed

# What a threshold may name, and how it compares.
METRICS = ("accuracy", "kappa", "ambiguity_rate", "error_rate", "latency_p50_ms", "latency_p90_ms")
OPERATORS = (">=", "<=", ">", "<")
FAILED = "(error)"


@dataclass(frozen=True)
class Outcome:
    """One verdict of a run, as the metrics need it."""

    item_id: str
    expected: str
    classification: str | None
    ambiguous: bool
    error: bool
    latency_ms: float
    prompt_tokens: int | None  # None: the judge's reply said nothing of its usage
    completion_tokens: int | None

    @property
    def predicted(self) -> str:
        return FAILED if self.error or self.classification is None else self.classification

    @property
    def correct(self) -> bool:
        return self.predicted == self.expected


def validate_thresholds(thresholds: Any) -> dict[str, dict[str, float]]:
    """Thresholds as stored: ``{"kappa": {">=": 0.6}, "ambiguity_rate": {"<=": 0.2}}``; ValidationFailed names
    what is wrong."""
    if not isinstance(thresholds, dict):
        raise ValidationFailed("thresholds must be an object of metric: {operator: value}.")
    clean: dict[str, dict[str, float]] = {}
    for metric, rule in thresholds.items():
        if metric not in METRICS:
            raise ValidationFailed(
                f"There is no metric {metric!r} to hold a threshold on.",
                details={"field": "thresholds", "metric": metric, "metrics": list(METRICS)},
            )
        if not isinstance(rule, dict) or not rule:
            raise ValidationFailed(
                f'The threshold of {metric!r} must be an object like {{">=": 0.6}}.',
                details={"field": "thresholds", "metric": metric},
            )
        clean[metric] = {}
        for operator, value in rule.items():
            if operator not in OPERATORS:
                raise ValidationFailed(
                    f"Unknown comparison {operator!r} for {metric!r}.",
                    details={"field": "thresholds", "metric": metric, "operators": list(OPERATORS)},
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValidationFailed(
                    f"The threshold {metric} {operator} must be a number.",
                    details={"field": "thresholds", "metric": metric},
                )
            if metric in ("accuracy", "ambiguity_rate", "error_rate") and not 0 <= value <= 1:
                raise ValidationFailed(
                    f"{metric} is a share: its threshold must be in [0, 1].",
                    details={"field": "thresholds", "metric": metric},
                )
            if metric == "kappa" and not -1 <= value <= 1:
                raise ValidationFailed(
                    "kappa lies in [-1, 1]: so must its threshold.",
                    details={"field": "thresholds", "metric": metric},
                )
            clean[metric][operator] = float(value)
    return clean


def check(thresholds: dict[str, dict[str, float]], values: dict[str, Any]) -> list[dict[str, Any]]:
    """Each threshold with the measured value and whether it passed (a metric that could not be measured,
    such as kappa on a set of one class, fails)."""
    checks = []
    for metric, rule in thresholds.items():
        for operator, limit in rule.items():
            actual = values.get(metric)
            checks.append(
                {
                    "metric": metric,
                    "operator": operator,
                    "value": limit,
                    "actual": actual,
                    "passed": actual is not None and _compare(float(actual), operator, limit),
                }
            )
    return checks


def _compare(actual: float, operator: str, limit: float) -> bool:
    if operator == ">=":
        return actual >= limit
    if operator == "<=":
        return actual <= limit
    if operator == ">":
        return actual > limit
    return actual < limit


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in (0, 1])."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)], 1)


def load_scikit_learn() -> None:
    """Import scikit-learn's metrics (about 3 s of CPU the first time in a process): golden-set jobs do it off
    the event loop when they start, so that the job completing a run does not do it inside its transaction."""
    import sklearn.metrics  # noqa: F401


def kappa(expected: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Cohen's kappa (scikit-learn's), or None where it is undefined (every answer and verdict one class)."""
    from sklearn.metrics import cohen_kappa_score  # heavy: imported by the first run, not at start-up

    if not expected or len(set(expected) | set(predicted)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(cohen_kappa_score(list(expected), list(predicted)))
    return None if math.isnan(value) else round(value, 4)


def measure(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Accuracy, kappa, per-class confusion, ambiguity and error rates, tokens, latency of one evaluator's
    verdicts."""
    count = len(outcomes)
    expected = [o.expected for o in outcomes]
    predicted = [o.predicted for o in outcomes]
    confusion: dict[str, dict[str, int]] = {}
    for want, got in zip(expected, predicted, strict=True):
        row = confusion.setdefault(want, {})
        row[got] = row.get(got, 0) + 1
    latencies = [o.latency_ms for o in outcomes if not o.error]
    # Tokens as the judge's replies reported them: when one verdict's usage is unknown the totals are too (a
    # partial sum would pass for the whole); a failed item made no verdict and is left out.
    missing = sum(
        1
        for o in outcomes
        if o.classification is not None and (o.prompt_tokens is None or o.completion_tokens is None)
    )
    prompt = None if missing else sum(o.prompt_tokens or 0 for o in outcomes)
    completion = None if missing else sum(o.completion_tokens or 0 for o in outcomes)
    return {
        "items": count,
        "correct": sum(o.correct for o in outcomes),
        "accuracy": round(sum(o.correct for o in outcomes) / count, 4) if count else None,
        "kappa": kappa(expected, predicted),
        "confusion": {want: dict(sorted(row.items())) for want, row in sorted(confusion.items())},
        "ambiguous": sum(o.ambiguous for o in outcomes),
        "ambiguity_rate": round(sum(o.ambiguous for o in outcomes) / count, 4) if count else None,
        "errors": sum(o.error for o in outcomes),
        "error_rate": round(sum(o.error for o in outcomes) / count, 4) if count else None,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": None if prompt is None or completion is None else prompt + completion,
        "usage_missing": missing,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p90_ms": percentile(latencies, 0.9),
    }


def validate_prices(prices: Any, *, field: str = "prices") -> dict[str, dict[str, float]]:
    """A price table as stored: ``{"model": {"prompt": 0.15, "completion": 0.6}}``, US dollars per million
    tokens; ValidationFailed names what is wrong."""
    if not isinstance(prices, dict):
        raise ValidationFailed(
            f'{field} must be an object of model: {{"prompt": USD, "completion": USD}} per million tokens.',
            details={"field": field},
        )
    clean: dict[str, dict[str, float]] = {}
    for model, price in prices.items():
        if not isinstance(model, str) or not model.strip() or len(model) > 200:
            raise ValidationFailed(f"{field}: a model name of 1 to 200 characters.", details={"field": field})
        if not isinstance(price, dict) or set(price) != {"prompt", "completion"}:
            raise ValidationFailed(
                f'{field}[{model!r}] must be {{"prompt": USD, "completion": USD}} per million tokens.',
                details={"field": field, "model": model},
            )
        for part, value in price.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
                raise ValidationFailed(
                    f"{field}[{model!r}].{part} must be a number of dollars, 0 or more.",
                    details={"field": field, "model": model},
                )
        clean[model] = {"prompt": float(price["prompt"]), "completion": float(price["completion"])}
    return clean


def cost(measured: dict[str, Any], price: dict[str, float] | None) -> float | None:
    """The estimated cost in US dollars of measured tokens at a price per million; None when either is
    unknown."""
    if price is None or measured["prompt_tokens"] is None or measured["completion_tokens"] is None:
        return None
    dollars = (
        float(
            measured["prompt_tokens"] * price["prompt"] + measured["completion_tokens"] * price["completion"]
        )
        / 1_000_000
    )
    return round(dollars, 6)


def diff(now: Sequence[Outcome], before: Sequence[Outcome]) -> dict[str, Any]:
    """Per item in both runs: better (wrong before, right now), worse, or the same."""
    previous = {o.item_id: o.correct for o in before}
    better = sorted(o.item_id for o in now if o.item_id in previous and o.correct and not previous[o.item_id])
    worse = sorted(o.item_id for o in now if o.item_id in previous and not o.correct and previous[o.item_id])
    compared = sum(1 for o in now if o.item_id in previous)
    return {
        "compared": compared,
        "better": len(better),
        "worse": len(worse),
        "same": compared - len(better) - len(worse),
        "better_items": better,
        "worse_items": worse,
    }
