"""Benchmarks run by `make bench` (`python -m bench`); not part of the test suite.

Every figure is printed as a ratio against a baseline measured in the same run on the same
machine, followed by the absolute numbers. Suites live in their own modules and register
themselves in `bench.__main__.SUITES`.
"""
