"""When may memory (or the judge) decide alone? From evidence: how often it was right, at what confidence.

Evidence is a list of samples: what the automatic decision would have been (its classification and raw
score) and whether a person decided the same. For each classification separately, the resolve threshold is
the lowest score at which the lower bound of the 95% Clopper-Pearson interval of precision is at least the
target, with at least ``MIN_SAMPLES`` samples above it. Thresholds are tested from the highest score down and
the search stops at the first that fails (fixed-sequence testing, as in "Trust or Escalate", Jung et al.,
ICLR 2025), so the threshold found carries the guarantee; testing every threshold and keeping the lowest that
passes would not. With no such threshold, that classification is never decided alone: memory suggests.

Scores are also mapped to calibrated confidences, so that among decisions shown at confidence c, about c are
right. Per classification, a logistic recalibration of the raw score (Platt scaling, with the raw score as its
offset): ``logit(confidence) = logit(score) + shift + tilt * logit(score)``, fitted to the evidence with a
ridge prior that holds the correction at zero until evidence outweighs it. Two parameters per classification
rather than an isotonic step function: isotonic regression overfits the hundreds of samples a project has
(its top step, fitted on a handful of right answers, promised 100% where 84% were right; replayed on public
data in time order, bench/loop.py), while the shift learns at once what a vote share cannot know, how often a
classification is right at all. Each classification separately: memory saying the rare one is usually wrong
more often than memory saying the common one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

MIN_SAMPLES = 30
CONFIDENCE_LEVEL = 0.95
# The recalibration's ridge prior, as penalties on the log-likelihood of the evidence: weak on the shift (the
# share right, learnt from tens of samples), stronger on the tilt (the score's slope, which needs more). Chosen by
# prequential replay (each sample predicted from the evidence before it) on HaluEval and DICES, where it cut the
# expected calibration error from 0.024 and 0.106 (isotonic) to 0.008 and 0.051.
SHIFT_PENALTY = 2.0
TILT_PENALTY = 10.0
RELIABILITY_BINS = 10


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


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Recalibration:
    """``logit(confidence) = logit(score) + shift + tilt * logit(score)``: the identity until fitted."""

    shift: float = 0.0
    tilt: float = 0.0

    def __call__(self, score: float) -> float:
        z = _logit(score)
        return 1 / (1 + math.exp(-(z + self.shift + self.tilt * z)))


def recalibrate(samples: Sequence[Sample]) -> Recalibration:
    """The maximum a posteriori fit of "was right" on the raw score: Newton's method on two parameters, each
    step halved until the (convex) objective falls."""
    if not samples:
        return Recalibration()
    import numpy as np

    z = np.array([_logit(s.score) for s in samples])
    y = np.array([1.0 if s.correct else 0.0 for s in samples])
    x = np.stack([np.ones_like(z), z], axis=1)
    penalty = np.diag([2 * SHIFT_PENALTY, 2 * TILT_PENALTY])

    def objective(w: Any) -> float:
        eta = z + x @ w
        return float(np.sum(np.logaddexp(0, eta) - y * eta) + w @ penalty @ w / 2)

    w = np.zeros(2)
    current = objective(w)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(z + x @ w)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6 and objective(w - scale * step) > current:
            scale /= 2
        w = w - scale * step
        current = objective(w)
        if float(np.abs(scale * step).max()) < 1e-9:
            break
    return Recalibration(shift=round(float(w[0]), 6), tilt=round(float(w[1]), 6))


@dataclass(frozen=True)
class ReliabilityBin:
    """Decisions whose raw score fell in [score_from, score_to): how many, the share right, and the mean
    calibrated confidence shown for them."""

    score_from: float
    score_to: float
    decisions: int
    right: float
    confidence: float


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
    maps: dict[str, Recalibration] = field(default_factory=dict)  # per classification
    evidence: tuple[Sample, ...] = field(default=(), repr=False, compare=False)

    @cached_property
    def curve(self) -> list[CurvePoint]:
        """Precision against coverage (see :func:`curve`): worked out when shown, not for every decision (its
        intervals are new ones each time the evidence grows, and each costs a beta quantile)."""
        return curve(self.evidence)

    def decides_alone(self, classification: str, score: float) -> bool:
        found = self.classes.get(classification)
        return found is not None and found.threshold is not None and score >= found.threshold

    def confidence(self, score: float, classification: str) -> float:
        """The calibrated confidence of a raw score for this classification (the raw score with no evidence)."""
        return round(self.maps.get(classification, Recalibration())(score), 4)

    def calibrated(self, classification: str) -> bool:
        """Whether the confidence of this classification rests on at least ``MIN_SAMPLES`` past decisions."""
        found = self.classes.get(classification)
        return found is not None and found.samples >= MIN_SAMPLES

    @cached_property
    def reliability(self) -> list[ReliabilityBin]:
        """The evidence as a reliability diagram: per tenth of the raw score, the share right beside the
        confidence shown."""
        bins: dict[int, list[Sample]] = {}
        for sample in self.evidence:
            if sample.predicted is not None:
                bins.setdefault(min(int(sample.score * RELIABILITY_BINS), RELIABILITY_BINS - 1), []).append(
                    sample
                )
        return [
            ReliabilityBin(
                score_from=index / RELIABILITY_BINS,
                score_to=(index + 1) / RELIABILITY_BINS,
                decisions=len(found),
                right=round(sum(s.correct for s in found) / len(found), 4),
                confidence=round(
                    sum(self.confidence(s.score, str(s.predicted)) for s in found) / len(found), 4
                ),
            )
            for index, found in sorted(bins.items())
        ]

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
        maps={option: recalibrate([s for s in samples if s.predicted == option]) for option in options},
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
