"""Garbage-collector settings for long-running server and worker processes.

Measured under load (bench/memory.py, timed with ``gc.callbacks``): with CPython's defaults, young collections
ran about fifty times a second, and full collections walked every object made at start-up (the libraries,
the app, its routes and schemas), stopping the event loop and the database threads for 120 to 170 ms several
times a minute. Every request in flight waited out each pause: they were most of the evaluation endpoint's
p99 and cost it a tenth of its throughput.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Call once start-up is done. What exists then lives as long as the process, so it is moved out of the
    collector's sight (``gc.freeze``). Young objects are collected every 10,000 net allocations instead of
    700: nearly all of a request's objects are freed by reference counting, and the extra passes found little."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
