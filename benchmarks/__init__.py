"""Benchmarks: `python benchmarks/run.py` runs them all and writes BENCHMARKS.md."""
