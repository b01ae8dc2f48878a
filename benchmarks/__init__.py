"""Benchmarks for botocreds, side by side with botocore's own refresh.

``python -m benchmarks`` runs every scenario, prints one summary line each and
writes ``benchmarks/RESULTS.md`` and PNG plots; ``--quick`` runs a short
version in about a minute and writes nothing next to the code unless given
``--write``. ``python -m benchmarks.hot_path`` runs scenario 1
alone with a detailed text report.
"""
