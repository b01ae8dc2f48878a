"""Argument checks shared by every refresher constructor and ``attach()``.

Each raises ``TypeError`` or ``ValueError`` at the call, naming what was
expected, before any I/O.
"""

from __future__ import annotations

from . import _botocore
from ._cache import check_cache
from ._events import check_reporter
from ._policy import RefreshPolicy


def check_arguments(
    policy: object,
    clock: object,
    random: object,
    reporter: object,
    cache: object,
    cache_key: object,
) -> RefreshPolicy:
    """Check the keyword arguments every refresher takes; return the policy to use."""
    if policy is None:
        policy = RefreshPolicy()
    elif not isinstance(policy, RefreshPolicy):
        raise TypeError(f"policy must be a botocreds.RefreshPolicy, got {type(policy).__name__}")
    for label, value in (("clock", clock), ("random", random)):
        if value is not None and not callable(value):
            raise TypeError(f"{label} must be callable, got {type(value).__name__}")
    check_reporter(reporter)
    check_cache(cache, cache_key)
    return policy


def not_a_client_hint(value: object) -> str:
    """A hint for the usual things passed where a client belongs, or ``""``."""
    if _botocore.is_client_creator(value):
        return (
            " (an aiobotocore create_client() result: attach the client it yields, "
            "inside `async with session.create_client(...) as client:`)"
        )
    if _botocore.is_client(getattr(getattr(value, "meta", None), "client", None)):
        return " (for a boto3 resource, pass resource.meta.client)"
    return ""


def check_client_kind(client: object, *, aio: bool, owner: str) -> None:
    """Raise ``TypeError`` unless ``client`` is a client of the kind (sync or async) wanted."""
    if not _botocore.is_client(client):
        kind = "an aiobotocore/aioboto3" if aio else "a botocore/boto3"
        raise TypeError(
            f"{owner}.attach() expected {kind} client, "
            f"got {type(client).__name__}{not_a_client_hint(client)}"
        )
    if _botocore.is_aio_client(client) and not aio:
        raise TypeError(
            f"{owner} serves botocore (sync) clients, and got an aiobotocore client: "
            "use botocreds.attach(client), or an AioRefresher over the client's "
            "aiobotocore credentials or AioSession"
        )
    if aio and not _botocore.is_aio_client(client):
        raise TypeError(
            f"{owner} serves aiobotocore (async) clients, and got a botocore client "
            f"({type(client).__name__}): use botocreds.attach(client), or a Refresher over "
            "the client's botocore credentials or session"
        )
