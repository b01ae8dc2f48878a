"""Fresh locks in a forked child for objects that keep one.

A lock held by another thread at ``fork()`` stays held in the child forever.
The scheduler and refreshers reset their own state after a fork; smaller
objects (the shared-cache tier, the metrics reporters) register their lock
attributes here and get new ones in the child.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

_owners: weakref.WeakKeyDictionary[Any, dict[str, Callable[[], Any]]] = weakref.WeakKeyDictionary()


def renew_after_fork(owner: object, attribute: str, factory: Callable[[], Any]) -> None:
    """In a forked child, set ``owner.attribute`` to a new ``factory()``."""
    _owners.setdefault(owner, {})[attribute] = factory


def _renew_in_child() -> None:
    for owner, attributes in list(_owners.items()):
        for attribute, factory in attributes.items():
            setattr(owner, attribute, factory())


os.register_at_fork(after_in_child=_renew_in_child)
