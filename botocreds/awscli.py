"""The AWS CLI v1 plugin: ``aws`` commands sign with background-refreshed credentials.

Add to the AWS config file (``~/.aws/config``)::

    [plugins]
    botocreds = botocreds.awscli

The CLI imports this module and calls :func:`awscli_initialize` before it
resolves any credentials. A long ``aws s3 cp`` then makes one fetch per
lifetime of its credentials, from a background thread, instead of refreshing
on its transfer threads. Settings come from the environment and the profile,
as for ``botocreds.plugin``.
"""

from __future__ import annotations

from typing import Any


def awscli_initialize(cli: Any) -> None:
    """Cover the CLI's session and every client it makes. Never raises.

    ``cli`` is the CLI's event emitter. botocreds installs its session
    wrappers now (the CLI's session has not resolved credentials yet), and
    again on ``session-initialized`` in case the CLI made its session first.
    """
    _activate()
    try:
        cli.register("session-initialized", _on_session_initialized, unique_id="botocreds")
    except Exception:
        _warn("botocreds.awscli could not register with the AWS CLI")


def _on_session_initialized(session: Any = None, **_: Any) -> None:
    _activate()


def _activate() -> None:
    try:
        from ._install import activate_from_environment

        activate_from_environment()
    except Exception:
        _warn("botocreds.awscli could not be loaded")


def _warn(message: str) -> None:
    import logging

    logging.getLogger("botocreds").warning(message)
