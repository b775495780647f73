from __future__ import annotations

from casework.api.deps import KeyCache
from casework.services.auth import Principal, Role

ALICE = Principal(key_id="key_a", workspace_id="ws_1", role=Role.admin, label="alice")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = KeyCache(5, clock=clock)
    cache.put("h", ALICE)
    clock.now += 4.9
    assert cache.get("h") == ALICE
    clock.now += 0.2
    assert cache.get("h") is None


def test_zero_ttl_caches_nothing_and_size_is_bounded() -> None:
    off = KeyCache(0)
    off.put("h", ALICE)
    assert off.get("h") is None
    small = KeyCache(60, max_entries=2)
    for name in ("a", "b", "c"):
        small.put(name, ALICE)
    assert [small.get(n) is not None for n in ("a", "b", "c")] == [False, True, True]
