"""``python -m bench``: run every benchmark in turn (``make bench``). ``python -m bench NAME`` runs one."""

from __future__ import annotations

import importlib
import sys

from bench.results import note_start

BENCHMARKS = [
    "startup",
    "review_queue",
    "memory",
    "loop",
    "events",
    "ingest",
    "ui",
    "golden",
    "trends",
    "agreement",
]

if __name__ == "__main__":
    for name in sys.argv[1:] or BENCHMARKS:
        print(f"== bench/{name}.py")
        note_start()
        importlib.import_module(f"bench.{name}").main()
