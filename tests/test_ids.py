"""Public ids sort in the order they were made, within a process, even many in one millisecond."""

from __future__ import annotations

from casework.ids import new_id


def test_ids_made_in_one_process_only_grow() -> None:
    made = [new_id("dlv") for _ in range(10_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(len(i) == len("dlv_") + 26 for i in made)
