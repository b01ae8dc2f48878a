"""botocore's client-plugin entry point: every client in the process, no code changed.

Set ``BOTOCORE_EXPERIMENTAL__PLUGINS=botocreds=botocreds.plugin`` and botocore
(1.39.9 and later) and aiobotocore call :func:`initialize_client_plugin` for
every client they create (not for the nested clients of their own credential
providers). This module is imported into every such process, so it imports
nothing until a client is created.
"""

from __future__ import annotations


def initialize_client_plugin(client: object) -> None:
    """Cover ``client``, and every session resolved from now on. Never raises.

    The first call installs botocreds process-wide from the environment's
    settings (see ``botocreds.install``); a bad setting is logged once, at
    WARNING, naming it, and the client is left as botocore made it.
    """
    try:
        from ._install import cover_client

        cover_client(client)
    except Exception:  # botocore logs a plugin's errors at DEBUG only: say it once here
        global _warned
        if not _warned:
            _warned = True
            import logging

            logging.getLogger("botocreds").warning("botocreds.plugin could not be loaded")


_warned = False
