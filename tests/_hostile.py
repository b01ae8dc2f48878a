"""Acting as another local user against a FileCache: planted files, foreign owners, forks.

Giving a file to another user, or becoming one, takes root. CI runs the
suite as root, so there these tests run, and would fail loudly if it did not;
elsewhere they are skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

IS_ROOT = os.geteuid() == 0

#: The uid and gid the tests give planted files, and become in a forked child.
NOBODY = 65534

needs_root = pytest.mark.skipif(
    not IS_ROOT and not os.environ.get("CI"),
    reason="only root can give a file to another user or act as one",
)

#: The exit status of a child whose action the kernel refused.
REFUSED = 13


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def plant(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Write a file as the cache would find it: this user's own, with ``mode``."""
    path.write_bytes(content)
    path.chmod(mode)


def as_another_user(action: Callable[[], object], uid: int = NOBODY) -> int:
    """Run ``action`` in a forked child that has become ``uid`` for good; its exit status.

    0 if ``action`` returned, :data:`REFUSED` if it raised ``PermissionError``
    (the kernel said no), 1 for anything else. The child does nothing but
    system calls before ``os._exit``, so forking a threaded test process is safe.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            action()
            code = 0
        except PermissionError:
            code = REFUSED
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
