"""Pytest-free helpers of the path checks that the conformance suite runs."""
