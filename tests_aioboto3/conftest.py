"""Fixtures for the aioboto3 tests: the shared ones from ``tests``."""

from __future__ import annotations

from tests.conftest import hermetic_aws, moto_endpoint

__all__ = ["hermetic_aws", "moto_endpoint"]
