"""How secrets are shown: they are not. Access keys show their last 4 characters."""

from __future__ import annotations


def mask_access_key(access_key: str | None) -> str:
    """Return ``access_key`` masked to its last 4 characters, e.g. ``'****WXYZ'``."""
    if not access_key:
        return "<none>"
    return "****" + access_key[-4:]


def describe_error(error: BaseException) -> str:
    """A one-line description of ``error``: its type and its message.

    Exceptions come from botocore and user fetchers, whose messages carry no
    credentials; botocreds' own messages are written never to include them.
    """
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    return f"{name}: {text}" if text else name
