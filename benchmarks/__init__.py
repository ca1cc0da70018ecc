"""Benchmarks: `python -m benchmarks` (or `make bench`); see README for the figures."""
