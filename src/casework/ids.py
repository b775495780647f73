"""Public identifiers: a readable type prefix and a time-ordered random part (``rev_01JQ...``).

Time order keeps B-tree inserts local and makes ids usable as stable pagination cursors.
"""

from __future__ import annotations

import os
import threading
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_last = 0
_lock = threading.Lock()


def new_id(prefix: str) -> str:
    """Return ``<prefix>_`` followed by 26 characters: 48 bits of milliseconds, then 80 random bits. Within a
    process ids only grow (one made in the same millisecond as the last is the last plus one, as ULID's monotonic
    mode does), so things made in order, in one batch, sort in that order."""
    global _last
    with _lock:
        value = max((time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big"), _last + 1)
        _last = value
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_CROCKFORD[index])
    return f"{prefix}_{''.join(reversed(chars))}"
