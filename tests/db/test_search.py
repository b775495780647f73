"""Which words full-text search looks for: the rare ones, within a bound on how many controls they touch."""

from __future__ import annotations

from casework.db.search import search_terms

FREQUENCIES = {"hometown": 45, "available": 1394, "try": 1483, "climate": 1769, "tsunami": 3}


def test_the_rarest_words_first_and_no_more_than_asked() -> None:
    terms = ["available", "climate", "hometown", "try", "tsunami"]
    assert search_terms(terms, FREQUENCIES, max_terms=2, max_postings=10_000) == ["tsunami", "hometown"]


def test_common_words_stop_once_the_controls_they_touch_pass_the_bound() -> None:
    terms = ["available", "climate", "hometown", "try", "tsunami"]
    # 3 + 45 + 1394 controls fit in 1,500; adding "try" would not.
    assert search_terms(terms, FREQUENCIES, max_terms=4, max_postings=1_500) == [
        "tsunami",
        "hometown",
        "available",
    ]


def test_the_rarest_known_word_is_searched_even_past_the_bound() -> None:
    assert search_terms(["climate", "try"], FREQUENCIES, max_terms=4, max_postings=100) == ["try"]


def test_words_no_control_holds_yet_are_always_searched() -> None:
    terms = ["climate", "newword", "othernew"]
    assert search_terms(terms, FREQUENCIES, max_terms=4, max_postings=100) == [
        "climate",
        "newword",
        "othernew",
    ]
