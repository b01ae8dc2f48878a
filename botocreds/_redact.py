"""How secrets are shown: they are not. Access keys show their last 4 characters."""

from __future__ import annotations

import re


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


#: botocore's credential_process provider quotes an answer's unsupported Version.
_QUOTED_VERSION = re.compile(r"Unsupported version '.*' for credential process", re.DOTALL)
_VERSION_NOT_SHOWN = "Unsupported version (not shown) for credential process"

#: Libraries whose messages quote the input they could not read: dateutil's
#: ``ParserError`` repeats the expiry it was given, which may be a secret that
#: a source put in the wrong field.
_QUOTING_PACKAGES = ("dateutil",)


def describe_error(error: BaseException) -> str:
    """A one-line description of ``error``: its type and the first line of its message.

    Exceptions come from botocore and user fetchers, whose messages name what
    failed rather than the answer; botocreds' own messages are written never to
    include a value. Two kinds of message would quote an answer, and are not
    shown as they are (see :func:`message_is_hidden`): one raised inside a
    parser that repeats its input (dateutil, reading an expiry) is named by its
    type only, and botocore's "Unsupported version '...'" has the version left
    out. This never raises: an exception whose ``__str__`` fails (or returns
    something that is not a string) is described by its type name as
    ``(unprintable)``. Any ``BaseException`` is accepted.
    """
    name = type(error).__name__
    if _from_a_quoting_parser(error):
        return f"{name}: the value could not be read (not shown: the message quotes it)"
    text = _message(error)
    if text is None:
        return f"{name}: (unprintable)"
    lines = _QUOTED_VERSION.sub(_VERSION_NOT_SHOWN, text).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return f"{name}: {first}" if first else name


def message_is_hidden(error: BaseException) -> bool:
    """Whether :func:`describe_error` leaves out part of ``error``'s message, as quoting a value."""
    if _from_a_quoting_parser(error):
        return True
    text = _message(error)
    return text is not None and _QUOTED_VERSION.search(text) is not None


class HiddenError(Exception):
    """Stands in, as a chained cause, for an exception whose message would quote a value.

    Its message is :func:`describe_error` of the original, which is not kept,
    neither as an attribute nor in a chain.
    """


def safe_cause(error: BaseException) -> BaseException:
    """``error`` to chain as a cause, or a :class:`HiddenError` if its message is not shown.

    A ``raise ... from error`` puts the whole message, and the chain behind
    it, in every traceback: where :func:`describe_error` hides part of a
    message, the cause must hide it too.
    """
    if not message_is_hidden(error):
        return error
    stand_in = HiddenError(describe_error(error))
    stand_in.__suppress_context__ = True
    return stand_in


def _message(error: BaseException) -> str | None:
    try:
        return str.strip(str(error))
    except Exception:  # a broken __str__ (str() raises TypeError for a non-str result)
        return None


def _from_a_quoting_parser(error: BaseException) -> bool:
    """Whether ``error`` is a type of a quoting package, or was raised by its code."""
    modules = [getattr(type(error), "__module__", "")]
    frame = error.__traceback__
    while frame is not None:
        modules.append(frame.tb_frame.f_globals.get("__name__"))
        frame = frame.tb_next
    return any(
        isinstance(module, str) and (module == package or module.startswith(package + "."))
        for module in modules
        for package in _QUOTING_PACKAGES
    )
