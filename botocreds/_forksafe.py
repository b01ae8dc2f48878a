"""What a forked child must renew before anything else runs: one handler, in order.

A lock held by another thread at ``fork()`` stays held in the child forever,
and the parent's threads do not exist there. One at-fork handler, registered
when botocreds is first imported, does everything in a fixed order:

1. every lock registered with :func:`renew_after_fork` is replaced by a new one,
   module locks included, before any botocreds code in the child can take one;
2. every reset registered with :func:`on_fork_in_child` runs, in the order of
   registration (the event queues, the schedulers, then every refresher).

No reset starts a thread: the scheduler, mint, event and event-loop threads
start again on first use in the child.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from typing import Any

_owners: weakref.WeakKeyDictionary[Any, dict[str, Callable[[], Any]]] = weakref.WeakKeyDictionary()
_resets: list[Callable[[], None]] = []


def renew_after_fork(owner: object, attribute: str, factory: Callable[[], Any]) -> None:
    """In a forked child, set ``owner.attribute`` to a new ``factory()`` first of all."""
    _owners.setdefault(owner, {})[attribute] = factory


def on_fork_in_child(reset: Callable[[], None]) -> None:
    """Run ``reset`` in a forked child, after every lock is renewed. It must start no thread."""
    _resets.append(reset)


def _renew_locks() -> None:
    for owner, attributes in list(_owners.items()):
        for attribute, factory in attributes.items():
            setattr(owner, attribute, factory())


def _after_fork_in_child() -> None:
    _renew_locks()
    for reset in _resets:
        # No logging here: a log handler's own lock may be the parent's. A
        # reset is written not to raise; one that does must not stop the rest.
        with contextlib.suppress(Exception):
            reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
