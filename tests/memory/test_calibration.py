"""The statistics behind "memory may decide alone": exact bounds, the fixed sequence, calibrated confidence."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from casework.memory.calibration import (
    Sample,
    calibrate,
    fewest_samples,
    interval,
    threshold_for,
)


def test_clopper_pearson_matches_published_values() -> None:
    # Clopper & Pearson (1934); the same figures as R's binom.test and statsmodels' method="beta".
    assert interval(0, 10) == (0.0, pytest.approx(0.3084971, abs=1e-6))
    assert interval(10, 10) == (pytest.approx(0.6915029, abs=1e-6), 1.0)
    lower, upper = interval(7, 10)
    assert (lower, upper) == (pytest.approx(0.3475471, abs=1e-6), pytest.approx(0.9332605, abs=1e-6))


def test_the_fewest_samples_that_can_pass_are_fixed_before_looking() -> None:
    assert fewest_samples(0.97) == 122  # 0.025 ** (1 / 122) >= 0.97 > 0.025 ** (1 / 121)
    assert interval(122, 122)[0] >= 0.97 > interval(121, 121)[0]
    assert fewest_samples(0.5) == 30  # never fewer than 30


def samples(spec: list[tuple[float, int, int]], predicted: str = "fail") -> list[Sample]:
    """(score, right, wrong) groups."""
    out = []
    for score, right, wrong in spec:
        out += [Sample(score, predicted, True)] * right + [Sample(score, predicted, False)] * wrong
    return out


def test_the_threshold_is_the_lowest_score_that_keeps_the_lower_bound_over_the_target() -> None:
    found = samples([(0.9, 150, 0), (0.8, 100, 1), (0.7, 50, 10)])
    threshold, above, right = threshold_for(found, 0.97)
    assert (threshold, above, right) == (0.8, 251, 250)
    assert interval(right, above)[0] >= 0.97
    # Below the threshold, with the 0.7 group, the bound falls under the target.
    assert interval(300, 311)[0] < 0.97


def test_the_search_stops_at_the_first_threshold_that_fails() -> None:
    # An early error high up fails the first test: the lower thresholds are never tried, although testing
    # each on its own (and keeping the lowest that passes) would pick one: that is the multiple-testing trap.
    found = samples([(0.99, 121, 1), (0.9, 2000, 10)])
    assert threshold_for(found, 0.97) == (None, 0, 0)
    assert interval(2121, 2132)[0] >= 0.97


def test_no_threshold_without_enough_evidence() -> None:
    assert threshold_for(samples([(0.95, 100, 0)]), 0.97)[0] is None  # all right, but 100 < 122
    assert threshold_for(samples([(0.95, 122, 0)]), 0.97)[0] == 0.95


def test_thresholds_are_per_classification_and_errors_on_one_do_not_pass_the_other() -> None:
    found = samples([(0.9, 200, 0)], "fail") + samples([(0.9, 150, 30)], "pass")
    calibration = calibrate(found, target=0.97, options=["pass", "fail"])
    assert calibration.decides_alone("fail", 0.9)
    assert not calibration.decides_alone("pass", 0.99)
    assert calibration.classes["fail"].above == 200 and calibration.classes["pass"].threshold is None
    assert calibration.coverage == pytest.approx(200 / 380)


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _votes(n: int, seed: int, right_at: Callable[[float], float], label: str = "x") -> list[Sample]:
    """Raw vote shares between 0.5 and 1, right with probability ``right_at(score)``."""
    rng = random.Random(seed)
    found = []
    for _ in range(n):
        score = 0.5 + rng.random() / 2
        found.append(Sample(score, label, rng.random() < right_at(score)))
    return found


def test_calibrated_confidence_says_how_often_it_was_right_on_decisions_it_has_not_seen() -> None:
    # An overconfident vote share: right far less often than it says.
    def truly(score: float) -> float:
        return _sigmoid(0.5 * math.log(score / (1 - score)) - 0.4)

    calibration = calibrate(_votes(2000, 4, truly), target=0.97, options=["x"])
    unseen = _votes(20000, 5, truly)
    by_confidence: dict[int, list[tuple[float, bool]]] = {}
    for sample in unseen:
        shown = calibration.confidence(sample.score, "x")
        by_confidence.setdefault(int(shown * 20), []).append((shown, sample.correct))
    checked = 0
    for found in by_confidence.values():
        if len(found) >= 1000:
            shown = sum(c for c, _ in found) / len(found)
            assert sum(right for _, right in found) / len(found) == pytest.approx(shown, abs=0.04)
            checked += 1
    assert checked >= 2
    assert calibration.calibrated("x")


def test_each_classification_is_calibrated_on_its_own() -> None:
    # The same vote shares; memory saying "fail" is right 90% of the time, saying "pass" 40%.
    found = _votes(300, 6, lambda _: 0.9, "fail") + _votes(300, 7, lambda _: 0.4, "pass")
    calibration = calibrate(found, target=0.97, options=["pass", "fail"])
    assert calibration.confidence(0.7, "fail") == pytest.approx(0.9, abs=0.05)
    assert calibration.confidence(0.7, "pass") == pytest.approx(0.4, abs=0.06)


def test_with_little_evidence_the_raw_score_moves_only_a_little() -> None:
    calibration = calibrate([], target=0.97, options=["x"])
    assert calibration.confidence(0.8, "x") == 0.8 and not calibration.calibrated("x")
    # Three wrong answers do not prove memory is always wrong: the prior holds most of the score.
    few = calibrate([Sample(0.8, "x", False)] * 3, target=0.97, options=["x"])
    assert 0.3 < few.confidence(0.8, "x") < 0.8 and not few.calibrated("x")


def test_the_reliability_diagram_counts_the_evidence() -> None:
    found = _votes(500, 8, lambda score: score) + [Sample(0.3, None, False)] * 20  # nothing to say: left out
    calibration = calibrate(found, target=0.97, options=["x"])
    bins = calibration.reliability
    assert sum(b.decisions for b in bins) == 500
    assert [b.score_from for b in bins] == [0.5, 0.6, 0.7, 0.8, 0.9]
    for b in bins:
        inside = [s for s in found if s.predicted and b.score_from <= s.score < b.score_to]
        assert b.right == pytest.approx(sum(s.correct for s in inside) / len(inside), abs=1e-4)
        assert b.confidence == pytest.approx(b.right, abs=0.1)
