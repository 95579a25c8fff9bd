"""Benchmark suite: ``python -m benchmarks`` (``make bench``)."""
