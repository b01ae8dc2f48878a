"""botocore's client-plugin entry point.

Set ``BOTOCORE_EXPERIMENTAL__PLUGINS=botocreds=botocreds.plugin`` and botocore
(1.39.9 and later) and aiobotocore call :func:`initialize_client_plugin` for
every client they create.
"""

from __future__ import annotations


def initialize_client_plugin(client: object) -> None:
    """Cover ``client``; never raises."""
