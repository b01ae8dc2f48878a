"""An AWS CLI v1 plugin that writes down what the CLI does with its plugins.

Listed in a test's ``[plugins]`` section as ``tests_awscli._cli_probe``. With
``CLI_PROBE_LOG`` naming a file, it appends one line per event:

- ``awscli_initialize`` when the CLI initializes it;
- ``session-initialized <session type> <same|other>`` when the CLI emits that
  event: the session's type, and whether its event emitter is the one the
  plugin was initialized with;
- ``signed <credentials type>`` for every request a client of the CLI's session
  signs, naming the type of ``client._request_signer._credentials``.

Standard library only: it is imported by the CLI in a separate process.
"""

from __future__ import annotations

import os
from typing import Any

LOG_VARIABLE = "CLI_PROBE_LOG"

_initialized_with: list[object] = []


def _write(line: str) -> None:
    path = os.environ.get(LOG_VARIABLE)
    if path:
        # One short append per line: O_APPEND keeps lines from the CLI's threads whole.
        with open(path, "a") as log:
            log.write(line + "\n")


def _qualified(value: object) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _session_initialized(session: Any, **_: Any) -> None:
    emitter = session.get_component("event_emitter")
    same = "same" if any(emitter is seen for seen in _initialized_with) else "other"
    _write(f"session-initialized {_qualified(session)} {same}")


def _before_sign(request_signer: Any = None, **_: Any) -> None:
    _write(f"signed {type(request_signer._credentials).__name__}")


def awscli_initialize(event_hooks: Any) -> None:
    """The CLI's plugin entry point: register on the CLI session's event emitter."""
    _write("awscli_initialize")
    _initialized_with.append(event_hooks)
    event_hooks.register("session-initialized", _session_initialized)
    # The session's clients copy its emitter when created, so they all get this handler.
    event_hooks.register("before-sign", _before_sign)
