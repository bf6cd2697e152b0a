"""Benchmarks: ``mux bench``."""
