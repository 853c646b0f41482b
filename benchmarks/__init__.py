"""Benchmarks: `python -m benchmarks [name ...]` (or `make bench`) prints figures and writes docs/benchmarks.md."""
