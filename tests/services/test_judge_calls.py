"""What the judge was sent and answered is kept, bounded in size."""

from __future__ import annotations

from casework.services.judge_calls import TEXT_LIMIT, bounded


def test_long_prompts_are_kept_up_to_the_limit_and_say_what_was_cut() -> None:
    assert bounded("short") == "short"
    kept = bounded("x" * (TEXT_LIMIT + 1234))
    assert kept.startswith("x" * TEXT_LIMIT)
    assert kept.endswith("… [1,234 more characters not kept]")
