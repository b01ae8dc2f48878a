"""How secrets are shown: they are not. Access keys show their last 4 characters."""

from __future__ import annotations


def mask_access_key(access_key: str | None) -> str:
    """Return ``access_key`` masked to its last 4 characters, e.g. ``'****WXYZ'``."""
    if not access_key:
        return "<none>"
    return "****" + access_key[-4:]


def describe_value(value: object) -> str:
    """A value's type and, when it has one, its length, e.g. ``'str of length 40'``.

    This is how a bad answer names what it got: a fetcher that swaps two fields
    puts a secret where a date belongs, so the value itself is never shown.
    """
    name = type(value).__name__
    if value is None:
        return "None"
    try:
        length = len(value)  # type: ignore[arg-type]
    except Exception:  # not sized, or a __len__ that fails: the type alone
        return name
    return f"{name} of length {length}"


def describe_error(error: BaseException) -> str:
    """A one-line description of ``error``: its type and the first line of its message.

    Exceptions come from botocore and user fetchers, whose messages carry no
    credentials; botocreds' own messages are written never to include them.
    This never raises: an exception whose ``__str__`` fails (or returns
    something that is not a string) is described by its type name as
    ``(unprintable)``. Any ``BaseException`` is accepted.
    """
    name = type(error).__name__
    try:
        text = str(error)
        lines = str.splitlines(str.strip(text))
    except Exception:  # a broken __str__ (str() raises TypeError for a non-str result)
        return f"{name}: (unprintable)"
    first = str.strip(lines[0]) if lines else ""
    return f"{name}: {first}" if first else name
