"""Benchmarks: python -m bench …; each compares the hub with a baseline measured in the same run."""
