"""Benchmarks of the Writech pipeline; `python -m benchmarks.run` is the main one (docs/benchmarks.md)."""
