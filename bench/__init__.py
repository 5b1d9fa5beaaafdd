"""Benchmarks: `make bench` (`python -m bench`). Figures go in BENCHMARKS.md."""
