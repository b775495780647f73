"""Benchmarks: each module prints its figures and writes its section of bench/RESULTS.md."""
