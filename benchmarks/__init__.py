"""Benchmarks for botocreds.

Run ``python -m benchmarks`` (or ``python -m benchmarks.hot_path``) for the
hot-path benchmark; add ``--quick`` for a short run.
"""
