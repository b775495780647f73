"""Span trees as exporters may send them: any depth, parents that never arrive, parents in a cycle. Every span is
shown once, and the tree nests at most MAX_TREE_DEPTH levels, so a reply (or page) can always be written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from casework.services.traces import MAX_TREE_DEPTH
from tests.support import make_project
from tests.tracing.test_untrusted_exports import TRACE_ID, export, span

pytestmark = pytest.mark.storage


def chain(length: int) -> list[dict[str, Any]]:
    """Spans each the child of the one before: a parent chain ``length`` deep."""
    ids = [f"{i + 1:016x}" for i in range(length)]
    return [span(span_id, ids[i - 1] if i else None) for i, span_id in enumerate(ids)]


def depth_of(nodes: list[dict[str, Any]]) -> tuple[int, int]:
    """(levels, spans) of a reply's span tree, counted without recursion."""
    deepest, total = 0, 0
    pending = [(node, 1) for node in nodes]
    while pending:
        node, level = pending.pop()
        deepest, total = max(deepest, level), total + 1
        pending.extend((child, level + 1) for child in node["children"])
    return deepest, total


@pytest.mark.parametrize("length", [300, 1000])
def test_a_deep_span_tree_is_shown_whole_and_nested_to_a_bound(admin: httpx.Client, length: int) -> None:
    project_id = make_project(admin)
    assert admin.post("/v1/traces", json=export(project_id, chain(length))).status_code == 200
    reply = admin.get(f"/api/v1/traces/{TRACE_ID}")
    assert reply.status_code == 200, reply.text[:500]
    assert depth_of(reply.json()["spans"]) == (MAX_TREE_DEPTH, length)


def test_a_cycle_of_parents_is_shown_not_lost(admin: httpx.Client) -> None:
    project_id = make_project(admin)
    spans = [
        span("00000000000000a1", "00000000000000a2"),
        span("00000000000000a2", "00000000000000a1"),
        span("00000000000000a3", "00000000000000a3"),  # its own parent
        span("00000000000000a4", "00000000000000a2"),
    ]
    assert admin.post("/v1/traces", json=export(project_id, spans)).status_code == 200
    tree = admin.get(f"/api/v1/traces/{TRACE_ID}").json()
    assert depth_of(tree["spans"])[1] == 4
    assert tree["span_count"] == 4
