"""The statistics behind "memory may decide alone": exact bounds, the fixed sequence, calibrated confidence."""

from __future__ import annotations

import random

import pytest

from casework.memory.calibration import (
    Sample,
    calibrate,
    fewest_samples,
    interval,
    isotonic_steps,
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


def test_calibrated_confidence_says_how_often_it_was_right() -> None:
    rng = random.Random(4)
    found = []
    for _ in range(4000):
        score = rng.random()
        right = rng.random() < 0.5 + score / 2  # truly right (1 + score) / 2 of the time
        found.append(Sample(score, "x", right))
    steps = isotonic_steps(found)
    assert [p for _, p in steps] == sorted(p for _, p in steps)  # more sure, never less often right
    calibration = calibrate(found, target=0.97, options=["x"])
    for score in (0.1, 0.5, 0.9):
        assert calibration.confidence(score) == pytest.approx(0.5 + score / 2, abs=0.08)
    assert isotonic_steps(found[:10]) == ()  # too little evidence: the raw score stands
