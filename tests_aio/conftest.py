"""Fixtures for the async suite: the shared ones from ``tests``.

These tests need aiobotocore, so they live apart from ``tests`` and run only in
the environments that install it (``tox -e aio`` and ``tox -e aioboto3``).
"""

from __future__ import annotations

from tests.conftest import (
    hermetic_aws,
    long_lived,
    make_process_profile,
    moto_endpoint,
    process_profile,
    rejecting_endpoint,
    uninstalled,
)

__all__ = [
    "hermetic_aws",
    "long_lived",
    "make_process_profile",
    "moto_endpoint",
    "process_profile",
    "rejecting_endpoint",
    "uninstalled",
]
