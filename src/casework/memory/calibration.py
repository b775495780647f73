"""When may memory (or the judge) decide alone? From evidence: how often it was right, at what confidence.

Evidence is a list of samples: what the automatic decision would have been (its classification and raw
score) and whether a person decided the same. For each classification separately, the resolve threshold is
the lowest score at which the lower bound of the 95% Clopper-Pearson interval of precision is at least the
target, with at least ``MIN_SAMPLES`` samples above it. Thresholds are tested from the highest score down and
the search stops at the first that fails (fixed-sequence testing, as in "Trust or Escalate", Jung et al.,
ICLR 2025), so the threshold found carries the guarantee; testing every threshold and keeping the lowest that
passes would not. With no such threshold, that classification is never decided alone: memory suggests.

Scores are also mapped to calibrated confidences (isotonic regression of being right on the score), so that
among decisions shown at confidence c, about c are right.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

MIN_SAMPLES = 30
CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True)
class Sample:
    score: float
    predicted: str | None  # None: no automatic decision could be made (nothing similar enough)
    correct: bool


@lru_cache(maxsize=65_536)
def interval(correct: int, total: int, level: float = CONFIDENCE_LEVEL) -> tuple[float, float]:
    """The Clopper-Pearson (exact binomial) interval of a proportion."""
    if total == 0:
        return (0.0, 1.0)
    from scipy.stats import beta  # a slow import: only where evidence is weighed

    tail = (1 - level) / 2
    lower = 0.0 if correct == 0 else float(beta.ppf(tail, correct, total - correct + 1))
    upper = 1.0 if correct == total else float(beta.ppf(1 - tail, correct + 1, total - correct))
    return (lower, upper)


@lru_cache(maxsize=256)
def fewest_samples(target: float) -> int:
    """The fewest samples, all right, whose interval's lower bound reaches ``target``: below that no test can
    pass, so the search starts there (a number fixed before looking at the evidence)."""
    if target <= 0:
        return MIN_SAMPLES
    # All right: the lower bound is ((1 - level) / 2) ** (1 / n).
    tail = (1 - CONFIDENCE_LEVEL) / 2
    needed = math.ceil(math.log(tail) / math.log(target)) if target < 1 else 10**9
    return max(MIN_SAMPLES, needed)


@dataclass(frozen=True)
class ClassEvidence:
    classification: str
    samples: int  # samples where this classification was the automatic decision
    threshold: float | None  # raw score at and above which it decides alone; None: it does not
    above: int  # samples at or above the threshold
    right_above: int

    @property
    def precision(self) -> float | None:
        return self.right_above / self.above if self.above else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return interval(self.right_above, self.above) if self.above else None


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    coverage: float  # share of all samples decided at or above it
    precision: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Calibration:
    target: float
    samples: int
    classes: dict[str, ClassEvidence]
    # Isotonic map from raw score to the share that were right: (score, probability) steps.
    steps: tuple[tuple[float, float], ...] = ()
    evidence: tuple[Sample, ...] = field(default=(), repr=False, compare=False)

    @cached_property
    def curve(self) -> list[CurvePoint]:
        """Precision against coverage (see :func:`curve`): worked out when shown, not for every decision (its
        intervals are new ones each time the evidence grows, and each costs a beta quantile)."""
        return curve(self.evidence)

    def decides_alone(self, classification: str, score: float) -> bool:
        found = self.classes.get(classification)
        return found is not None and found.threshold is not None and score >= found.threshold

    def confidence(self, score: float) -> float:
        """The calibrated confidence of a raw score; the raw score itself until there is enough evidence."""
        if not self.steps:
            return score
        scores = [s for s, _ in self.steps]
        index = bisect.bisect_right(scores, score) - 1
        return self.steps[max(index, 0)][1]

    @property
    def coverage(self) -> float:
        """Share of the samples that would have been decided alone."""
        return sum(c.above for c in self.classes.values()) / self.samples if self.samples else 0.0


def threshold_for(samples: Sequence[Sample], target: float) -> tuple[float | None, int, int]:
    """(threshold, samples at or above it, right among them) by fixed-sequence testing, highest score first."""
    ordered = sorted(samples, key=lambda s: -s.score)
    start = fewest_samples(target)
    best: tuple[float | None, int, int] = (None, 0, 0)
    right = 0
    for index, sample in enumerate(ordered):
        right += sample.correct
        count = index + 1
        if index + 1 < len(ordered) and ordered[index + 1].score == sample.score:
            continue  # a threshold takes every sample with its score
        if count < start:
            continue
        if interval(right, count)[0] >= target:
            best = (sample.score, count, right)
        else:
            break
    return best


def isotonic_steps(samples: Sequence[Sample]) -> tuple[tuple[float, float], ...]:
    """Pool-adjacent-violators fit of "was right" on score: a non-decreasing step function."""
    decided = sorted((s.score, 1.0 if s.correct else 0.0) for s in samples if s.predicted is not None)
    if len(decided) < MIN_SAMPLES:
        return ()
    from sklearn.isotonic import IsotonicRegression

    scores = [score for score, _ in decided]
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(
        scores, [right for _, right in decided]
    )
    steps: list[tuple[float, float]] = []
    # As Python floats (the same values): comparing numpy scalars one by one was most of a recalibration.
    for score, value in zip(scores, fitted.tolist(), strict=True):
        if not steps or value != steps[-1][1]:
            steps.append((score, round(value, 4)))
    return tuple(steps)


def calibrate(samples: Sequence[Sample], *, target: float, options: Sequence[str]) -> Calibration:
    classes = {}
    for option in options:
        own = [s for s in samples if s.predicted == option]
        threshold, above, right = threshold_for(own, target)
        classes[option] = ClassEvidence(option, len(own), threshold, above, right)
    return Calibration(
        target=target,
        samples=len(samples),
        classes=classes,
        steps=isotonic_steps(samples),
        evidence=tuple(samples),
    )


def curve(samples: Sequence[Sample], points: int = 20) -> list[CurvePoint]:
    """Precision against coverage, at up to ``points`` thresholds spread over the decided samples."""
    decided = sorted((s for s in samples if s.predicted is not None), key=lambda s: -s.score)
    if not decided:
        return []
    found = []
    step = max(1, len(decided) // points)
    right = 0
    for index, sample in enumerate(decided):
        right += sample.correct
        if (index + 1) % step == 0 or index + 1 == len(decided):
            lower, upper = interval(right, index + 1)
            found.append(
                CurvePoint(
                    threshold=sample.score,
                    coverage=round((index + 1) / len(samples), 4),
                    precision=round(right / (index + 1), 4),
                    lower=round(lower, 4),
                    upper=round(upper, 4),
                )
            )
    return found
