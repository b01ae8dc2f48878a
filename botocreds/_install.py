"""``install()`` and ``uninstall()``: cover every session and client in the process."""

from __future__ import annotations

from typing import Any


def install(policy: Any = None, *, reporter: Any = None, cache: Any = None) -> None:
    """Cover every botocore, boto3 and aiobotocore session created from now on."""
    raise NotImplementedError


def uninstall() -> None:
    """Stop covering new clients; clients already covered keep working."""
    raise NotImplementedError
