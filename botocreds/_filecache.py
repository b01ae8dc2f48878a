"""A shared cache tier in a directory: one file per key, for all the processes on one host.

See :class:`FileCache`. The single-flight lock is a kernel lock (``flock``)
taken through :mod:`filelock`, an optional dependency (``botocreds[file]``),
imported only when a :class:`FileCache` is built.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import json
import logging
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._cache import CacheUnavailable

if TYPE_CHECKING:
    import filelock

logger = logging.getLogger("botocreds")

#: Bumped when the file format changes; a file of another version is a miss.
FILE_VERSION = 1

#: The largest entry file read; anything bigger is not ours, so it is a miss.
MAX_FILE_BYTES = 64 * 1024

_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")
_FORBIDDEN_BITS = stat.S_IWGRP | stat.S_IWOTH


class FileCache:
    """A :class:`~botocreds._cache.SharedCache` in a local directory, for one host.

    Give every process on the host the same directory, for example
    ``FileCache("/run/botocreds")``, and the processes that refresh the same
    role share one call to the source per credential lifetime: the first to
    come due takes the key's lock, calls the source and writes the answer; the
    others find that newer entry and adopt it without calling the source.

    Layout: ``<key>.json`` holds an entry and its deadline (the TTL, so an
    entry never outlives its credentials' freshness); ``<key>.lock`` is the
    key's lock file. Entries are replaced atomically (a temporary file in the
    same directory, written and flushed to disk, then renamed over the old
    one), so a reader sees the old entry or the new one, never half of one.
    Lock files are left in place: removing one while another process waits
    on it would let two processes hold "the" lock at once.

    Security trade-off: the entries are live AWS credentials, written to disk
    unencrypted. They are protected by file permissions only: the files are
    created with mode 0600 in a directory of mode 0700, and the constructor
    refuses a directory that another user could write to (group- or
    world-writable), one owned by another user, or a symlink, since any of
    those would let another account read, plant or swap entries. What remains
    is that anything running as the same user (and root) can read them, as it
    could read ``~/.aws/credentials``. Prefer a directory on a memory file
    system (``/run``, ``/dev/shm``) so that credentials never reach a disk,
    and do not point it at a network file system: ``flock`` is not reliable
    there, and the entries would leave the host.

    ``clock`` gives the wall-clock time used for the entries' deadlines (all
    processes on one host share it); tests inject a fake one.

    Raises ``ImportError`` if :mod:`filelock` is not installed, and
    ``ValueError`` if the directory is unsafe or is not a directory.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            import filelock
        except ImportError as error:
            raise ImportError("FileCache needs filelock: pip install 'botocreds[file]'") from error
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        path = os.path.abspath(os.fspath(directory))
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except FileExistsError as error:
            raise ValueError(f"FileCache: {path} exists and is not a directory") from error
        _check_directory(path)
        self._directory = path
        self._clock = clock
        self._file_lock: type[filelock.BaseFileLock] = filelock.FileLock
        self._timeout: type[filelock.Timeout] = filelock.Timeout
        #: A label for logs and events: the directory, which is not a secret.
        self.name = f"FileCache({path})"

    @property
    def directory(self) -> str:
        """The absolute path of the cache directory."""
        return self._directory

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def load(self, key: str) -> bytes | None:
        """The entry stored under ``key``, or ``None`` if there is none that is still valid.

        A missing file, an expired entry and a corrupt or foreign file are all
        misses (the next :meth:`store` overwrites them). Any other error of
        the file system (permission denied, I/O error…) raises
        :class:`CacheUnavailable`, so the caller falls back to its source.
        """
        path = self._path(key, ".json")
        try:
            # O_NONBLOCK: a FIFO planted at the entry's name must not block a mint.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise CacheUnavailable(_describe(error, "cannot read", path)) from error
        try:
            with os.fdopen(fd, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            raise CacheUnavailable(_describe(error, "cannot read", path)) from error
        return self._unwrap(raw)

    def _unwrap(self, raw: bytes) -> bytes | None:
        if len(raw) > MAX_FILE_BYTES:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("v") != FILE_VERSION:
                return None
            expires = data["expires"]
            if isinstance(expires, bool) or not isinstance(expires, (int, float)):
                return None
            if not self._clock() < float(expires):
                return None
            entry = data["entry"]
            if not isinstance(entry, str):
                return None
            return base64.b64decode(entry.encode("ascii"), validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None

    def store(self, key: str, entry: bytes, ttl: float) -> None:
        """Store ``entry`` under ``key`` for ``ttl`` seconds, replacing any older entry.

        The write is atomic: a temporary file (mode 0600) in the cache
        directory is written, flushed and synced, then renamed over
        ``<key>.json``. A ``ttl`` of zero or less stores nothing, since such an
        entry would already be expired. Raises :class:`CacheUnavailable` if the
        file system refuses (disk full, read-only, permission denied…).
        """
        path = self._path(key, ".json")
        if not isinstance(entry, bytes):
            raise TypeError(f"entry must be bytes, got {type(entry).__name__}")
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl):
            raise ValueError(f"ttl must be a finite number of seconds, got {ttl!r}")
        if ttl <= 0:
            return
        wrapper = json.dumps(
            {
                "v": FILE_VERSION,
                "expires": self._clock() + ttl,
                "entry": base64.b64encode(entry).decode("ascii"),
            },
            separators=(",", ":"),
        ).encode()
        try:
            fd, temporary = tempfile.mkstemp(dir=self._directory, prefix=f".{key}.", suffix=".tmp")
        except OSError as error:
            raise CacheUnavailable(_describe(error, "cannot write to", self._directory)) from error
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(wrapper)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise CacheUnavailable(_describe(error, "cannot write", path)) from error

    @contextlib.contextmanager
    def lock(self, key: str, *, lease: float, wait: float) -> Iterator[bool]:
        """Hold ``<key>.lock``: yields ``True`` once acquired, ``False`` after ``wait`` seconds.

        The lock is an exclusive ``flock`` on the lock file, which excludes
        other processes and other threads of this one alike. The kernel drops
        it when its holder exits for any reason, even ``SIGKILL``, so a dead
        holder frees it at once and ``lease`` is not needed (it is accepted
        for the :class:`~botocreds._cache.SharedCache` protocol and ignored).
        Not reentrant: do not nest two ``lock()`` of one key in one thread.
        Raises :class:`CacheUnavailable` if the lock file cannot be opened.
        """
        path = self._path(key, ".lock")
        file_lock = self._file_lock(path, timeout=max(0.0, float(wait)), mode=0o600)
        try:
            file_lock.acquire()
        except self._timeout:
            acquired = False
        except OSError as error:
            raise CacheUnavailable(_describe(error, "cannot lock", path)) from error
        else:
            acquired = True
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    file_lock.release()
                except OSError as error:
                    # The kernel drops the lock when the descriptor is closed at
                    # the latest; an error here must not hide the caller's result.
                    logger.warning("botocreds: %s", _describe(error, "cannot unlock", path))

    def _path(self, key: str, suffix: str) -> str:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"FileCache keys are 1 to 200 of [A-Za-z0-9_-], got {key!r}")
        return os.path.join(self._directory, key + suffix)


def _check_directory(path: str) -> None:
    """Refuse a cache directory that another account could read from or write to."""
    try:
        info = os.lstat(path)
    except OSError as error:
        raise ValueError(f"FileCache: cannot inspect {path}: {error.strerror}") from error
    if stat.S_ISLNK(info.st_mode):
        raise ValueError(
            f"FileCache: {path} is a symlink; give the real directory, so that nobody "
            "can point the cache somewhere else"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"FileCache: {path} exists and is not a directory")
    if info.st_uid != os.geteuid():
        raise ValueError(
            f"FileCache: {path} is owned by uid {info.st_uid}, not by this user "
            f"(uid {os.geteuid()}); credentials must live in a directory of your own"
        )
    if info.st_mode & _FORBIDDEN_BITS:
        who = "everyone" if info.st_mode & stat.S_IWOTH else "its group"
        raise ValueError(
            f"FileCache: {path} is writable by {who} (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"other users could plant or swap credentials: chmod 700 {path}"
        )


def _describe(error: OSError, action: str, path: str) -> str:
    reason = error.strerror or errno.errorcode.get(error.errno or 0, "") or type(error).__name__
    return f"{action} {path}: {reason}"
