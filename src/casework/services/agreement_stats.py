"""The statistics of agreement, on plain ratings: what the agreement endpoint runs, and what a published data set
can be checked with.

Point values come from the reference libraries: Krippendorff's alpha from ``krippendorff`` (nominal, or ordinal
with the options' order as the value domain), Fleiss' kappa from statsmodels, Cohen's kappa as scikit-learn
computes it (in its own operations, on counts). Their 95% intervals are percentile bootstraps over items with a
fixed seed (the same data always gives the same interval), vectorised: every statistic here depends on an item
only through its row of counts per category, so the items are grouped by distinct rows and a resample is one
multinomial draw of how many times each row is taken, which is exactly resampling the items with replacement.
100,000 items cost what their few distinct rows cost.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

# krippendorff and statsmodels are imported where they are used: together they cost about 1.5 s to import
# (scipy), which every `casework` start would otherwise pay before it answers its first request.

BOOTSTRAP_SAMPLES = 500
BOOTSTRAP_SEED = 20261202
CONFIDENCE = 0.95

Level = Literal["nominal", "ordinal"]


@dataclass(frozen=True)
class Rating:
    """One reviewer's classification of one item."""

    item: str
    reviewer: str
    classification: str


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


def _rounded(value: float | None) -> float | None:
    value = _finite(value)
    return None if value is None else round(value, 4)


def _interval(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def _estimate(value: float | None, resampled: np.ndarray | None, items: int) -> dict[str, Any]:
    value = _rounded(value)
    return {
        "value": value,
        "interval": _interval(resampled)
        if value is not None and resampled is not None and items >= 2
        else None,
        "items": items,
    }


def _resample_weights(frequencies: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """``samples`` rows of how many times each distinct row is drawn when the items are resampled."""
    total = int(frequencies.sum())
    rng = np.random.default_rng(seed)
    return rng.multinomial(total, frequencies / total, size=samples).astype(float)


def _distinct_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows in order and how many times each comes, as ``np.unique(axis=0, return_counts=True)``
    gives them, faster: rows of whole counts are read as one number each, in base (largest count + 1), whose
    order is the rows' order (100,000 rows: a few ms instead of 50)."""
    if counts.size and counts.min() >= 0:
        base = int(counts.max()) + 1
        k = counts.shape[1]
        if k * math.log2(base) < 62 and np.array_equal(counts, np.floor(counts)):
            digits = base ** np.arange(k - 1, -1, -1, dtype=np.int64)
            codes = counts.astype(np.int64) @ digits
            _, first, frequencies = np.unique(codes, return_index=True, return_counts=True)
            return counts[first], frequencies
    patterns, frequencies = np.unique(counts, axis=0, return_counts=True)
    return patterns, frequencies


# Krippendorff's alpha from coincidence matrices (batched over a leading axis).


def _coincidences(patterns: np.ndarray) -> np.ndarray:
    """Each distinct row's contribution to the coincidence matrix: (n_c n_k - [c = k] n_c) / (m - 1)."""
    m = patterns.sum(axis=1)
    outer = patterns[:, :, None] * patterns[:, None, :]
    outer -= patterns[:, :, None] * np.eye(patterns.shape[1])[None, :, :]
    return np.asarray(outer / (m - 1)[:, None, None])


def _distances(marginals: np.ndarray, level: Level) -> np.ndarray:
    """Squared distances between categories: 1 off the diagonal (nominal), or Krippendorff's ordinal metric
    ((sum of n_g for g from c to k) - (n_c + n_k) / 2)^2 from the marginals (batched)."""
    k = marginals.shape[-1]
    if level == "nominal":
        return np.broadcast_to(1 - np.eye(k), (*marginals.shape[:-1], k, k))
    cumulative = np.cumsum(marginals, axis=-1)
    low = np.minimum.outer(np.arange(k), np.arange(k))
    high = np.maximum.outer(np.arange(k), np.arange(k))
    before_low = cumulative[..., low] - marginals[..., low]
    between = cumulative[..., high] - before_low
    return np.asarray((between - (marginals[..., :, None] + marginals[..., None, :]) / 2) ** 2)


def _alpha_of(coincidence: np.ndarray, level: Level) -> np.ndarray:
    marginals = coincidence.sum(axis=-1)
    n = marginals.sum(axis=-1)
    delta = _distances(marginals, level)
    observed = (coincidence * delta).sum(axis=(-2, -1))
    expected = (marginals[..., :, None] * marginals[..., None, :] * delta).sum(axis=(-2, -1)) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1 - observed / expected, np.nan)


def krippendorff_alpha(counts: np.ndarray, level: Level = "nominal") -> float:
    """The ``krippendorff`` package's alpha on rows of counts per category (columns in the options' order)."""
    if counts.shape[0] < 1 or (counts.sum(axis=1) >= 2).sum() < 1:
        return math.nan
    if np.count_nonzero(counts.sum(axis=0)) < 2:  # one category only: no variation to agree on
        return math.nan
    import krippendorff

    return float(
        krippendorff.alpha(
            value_counts=counts, value_domain=list(range(counts.shape[1])), level_of_measurement=level
        )
    )


def _percent_agreement(patterns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The share of agreeing pairs of ratings within an item, averaged over items (batched over weights)."""
    m = patterns.sum(axis=1)
    per_row = (patterns * (patterns - 1)).sum(axis=1) / (m * (m - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray((weights @ per_row) / weights.sum(axis=-1))


def _fleiss_batched(patterns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fleiss' kappa (rows with equal numbers of ratings m), as statsmodels computes it, batched over weights."""
    m = patterns[0].sum()
    items = weights.sum(axis=-1)
    shares = (weights @ patterns) / (items * m)[..., None]
    agreement = ((patterns**2).sum(axis=1) - m) / (m * (m - 1))
    mean_agreement = (weights @ agreement) / items
    chance = (shares**2).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(chance < 1, (mean_agreement - chance) / (1 - chance), np.nan)


def _fleiss(counts: np.ndarray) -> float:
    if counts.shape[0] < 1 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return math.nan
    from statsmodels.stats.inter_rater import fleiss_kappa

    return float(fleiss_kappa(counts, method="fleiss"))


def count_rows(ratings: Sequence[Rating], labels: Sequence[str]) -> np.ndarray:
    """Items with at least two ratings, as rows of counts per category (columns in ``labels``' order)."""
    index = {label: i for i, label in enumerate(labels)}
    by_item: dict[str, list[int]] = defaultdict(list)
    for rating in ratings:
        by_item[rating.item].append(index[rating.classification])
    rated = [given for given in by_item.values() if len(given) >= 2]
    counts = np.zeros((len(rated), len(labels)), dtype=float)
    for row, given in enumerate(rated):
        np.add.at(counts[row], given, 1)
    return counts


def alpha_estimate(
    counts: np.ndarray,
    *,
    level: Level = "nominal",
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Krippendorff's alpha on rows of counts, with its bootstrap interval and the number of items."""
    counts = counts[counts.sum(axis=1) >= 2] if counts.size else counts
    items = counts.shape[0]
    value = krippendorff_alpha(counts, level) if items else math.nan
    resampled = None
    if _finite(value) is not None and items >= 2:
        patterns, frequencies = _distinct_rows(counts)
        weights = _resample_weights(frequencies, samples, seed)
        coincidence = np.tensordot(weights, _coincidences(patterns), axes=(1, 0))
        resampled = _alpha_of(coincidence, level)
    return {**_estimate(value, resampled, items), "level": level}


def agreement_of_counts(
    counts: np.ndarray,
    *,
    level: Level = "nominal",
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Percent agreement, Fleiss' kappa and Krippendorff's alpha of items given as rows of counts per category."""
    items = counts.shape[0]
    totals = counts.sum(axis=1)
    common = Counter(totals.tolist()).most_common(1)[0][0] if items else 0
    equal = counts[totals == common]
    percent = fleiss = None
    percent_resampled = fleiss_resampled = None
    if items:
        patterns, frequencies = _distinct_rows(counts)
        weights = _resample_weights(frequencies, samples, seed)
        percent = float(_percent_agreement(patterns, frequencies.astype(float)))
        percent_resampled = _percent_agreement(patterns, weights)
    fleiss = _fleiss(equal) if len(equal) else math.nan
    if _finite(fleiss) is not None:
        patterns, frequencies = _distinct_rows(equal)
        fleiss_resampled = _fleiss_batched(patterns, _resample_weights(frequencies, samples, seed))
    return {
        "percent_agreement": _estimate(percent, percent_resampled, items),
        "fleiss_kappa": _estimate(fleiss, fleiss_resampled, len(equal)),
        "krippendorff_alpha": alpha_estimate(counts, level=level, samples=samples, seed=seed),
    }


def _kappa_of_tables(tables: np.ndarray) -> np.ndarray:
    """Cohen's kappa of contingency tables (batched): (p_o - p_e) / (1 - p_e), as scikit-learn computes it."""
    n = tables.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = np.trace(tables, axis1=-2, axis2=-1) / n
        expected = (tables.sum(axis=-1) * tables.sum(axis=-2)).sum(axis=-1) / n**2
        return np.where(expected < 1, (observed - expected) / (1 - expected), np.nan)


def pair_agreements(
    tables: dict[tuple[str, str], np.ndarray], *, samples: int, seed: int
) -> list[dict[str, Any]]:
    """Cohen's kappa per pair of reviewers from their k x k tables of classifications on the items both rated;
    the bootstrap resamples the shared items (the cells of their table)."""
    pairs = []
    for (first, second), table in tables.items():
        shared = int(table.sum())
        if not shared:
            continue
        k = table.shape[0]
        value = float(_kappa_of_tables(table))
        resampled = None
        if _finite(value) is not None and shared >= 2:
            draws = _resample_weights(table.reshape(-1), samples, seed).reshape(samples, k, k)
            resampled = _kappa_of_tables(draws)
        pairs.append(
            {
                "reviewers": [first, second],
                "agreement": round(float(np.trace(table)) / shared, 4),
                "cohen_kappa": _estimate(value, resampled, shared),
            }
        )
    return pairs


def pair_tables(ratings: Sequence[Rating], labels: Sequence[str]) -> dict[tuple[str, str], np.ndarray]:
    """Per pair of reviewers (in name order), the table of their classifications on the items both rated."""
    index = {label: i for i, label in enumerate(labels)}
    given: dict[str, dict[str, int]] = defaultdict(dict)  # reviewer -> item -> label index
    for rating in ratings:
        given[rating.reviewer][rating.item] = index[rating.classification]
    names = sorted(given)
    tables: dict[tuple[str, str], np.ndarray] = {}
    for position, first in enumerate(names):
        for second in names[position + 1 :]:
            shared = given[first].keys() & given[second].keys()
            if not shared:
                continue
            table = np.zeros((len(labels), len(labels)), dtype=float)
            for item in shared:
                table[given[first][item], given[second][item]] += 1
            tables[(first, second)] = table
    return tables


PAIR_BOOTSTRAP_SAMPLES = 200


def inter_rater(
    ratings: Sequence[Rating],
    *,
    categories: Sequence[str] | None = None,
    level: Level = "nominal",
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
    per_pair: bool = True,
) -> dict[str, Any]:
    """Agreement among raters: items are the units, every distinct classification a category (ordered as
    ``categories`` lists them when ``level`` is "ordinal", lowest first).

    Fleiss' kappa needs the same number of ratings per item: it is computed on the items with the most common
    number (``items`` says how many). Cohen's kappa is per pair of named reviewers, on the items both rated
    (``per_pair=False`` skips it: for data whose rater names are not stable ids).
    """
    labels = list(categories or sorted({r.classification for r in ratings}))
    for extra in sorted({r.classification for r in ratings} - set(labels)):
        labels.append(extra)
    counts = count_rows(ratings, labels)
    pairs: list[dict[str, Any]] = []
    if per_pair:
        multiple = {item for item, n in Counter(r.item for r in ratings).items() if n >= 2}
        pairs = pair_agreements(
            pair_tables([r for r in ratings if r.item in multiple], labels),
            samples=min(samples, PAIR_BOOTSTRAP_SAMPLES),
            seed=seed,
        )
    return {
        "items": int(counts.shape[0]),
        "ratings": int(counts.sum()),
        "categories": labels,
        **agreement_of_counts(counts, level=level, samples=samples, seed=seed),
        "pairs": pairs,
    }


def judge_vs_human(
    pairs: Sequence[tuple[str, str]], *, labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """The judge's verdicts against people's decisions: accuracy, Cohen's kappa and the confusion matrix
    (``confusion[judge][human]``)."""
    return judge_vs_human_of_counts(Counter(pairs), labels=labels)


def judge_vs_human_of_counts(
    counts: Mapping[tuple[str, str], int], *, labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """``judge_vs_human`` of the pairs (judge's verdict, person's decision) counted: how many of each."""
    present = {label for pair, n in counts.items() if n for label in pair}
    names = list(labels or sorted(present))
    for name in sorted(present):
        if name not in names:
            names.append(name)
    confusion = {j: {h: 0 for h in names} for j in names}
    for (j, h), n in counts.items():
        confusion[j][h] += n
    items = sum(counts.values())
    kappa = None
    if items and len(present) >= 2:
        matrix = np.array([[confusion[j][h] for h in names] for j in names], dtype=np.float64)
        kappa = _finite(_cohen_kappa(matrix))
    return {
        "items": items,
        "accuracy": round(sum(n for (j, h), n in counts.items() if j == h) / items, 4) if items else None,
        "cohen_kappa": None if kappa is None else round(kappa, 4),
        "labels": names,
        "confusion": confusion,
    }


def _cohen_kappa(confusion: np.ndarray) -> float:
    """Cohen's kappa of a confusion matrix in scikit-learn's ``cohen_kappa_score``'s own operations, so the
    same to the last bit (tests/api/test_agreement.py checks), without expanding counts into pairs."""
    n_classes = confusion.shape[0]
    sum0 = np.sum(confusion, axis=0)
    sum1 = np.sum(confusion, axis=1)
    expected = np.outer(sum0, sum1) / np.sum(sum0)
    weights = np.ones([n_classes, n_classes], dtype=np.float64)
    np.fill_diagonal(weights, 0)
    denominator = np.sum(weights * expected)
    if denominator == 0:
        return math.nan
    return float(1 - np.sum(weights * confusion) / denominator)
