"""A shared cache tier in a directory: one file per key, for all the processes on one host.

See :class:`FileCache`. The directory is checked from ``/`` down and held
open (:mod:`botocreds._safedir`); every entry and lock file is opened
relative to that descriptor and ``fstat``-ed before it is trusted. The
single-flight lock is a kernel lock (``flock``) on a lock file per key.
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
import secrets
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from ._cache import CacheUnavailable, ForgedEntry
from ._forksafe import renew_after_fork
from ._safedir import close_quietly, open_private_directory, os_reason

logger = logging.getLogger("botocreds")

#: Bumped when the file format changes; a file of another version is a miss.
FILE_VERSION = 1

#: The largest entry file read; anything bigger is not ours, so it is a miss.
MAX_FILE_BYTES = 64 * 1024

#: The mode of entry and lock files, whatever the umask.
FILE_MODE = 0o600

#: How often a process waiting for another's lock tries again, in seconds.
LOCK_POLL_INTERVAL = 0.05

_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")


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

    Trust: the entries are live AWS credentials, written to disk unencrypted
    and protected by file permissions only, so the constructor checks the
    directory the way OpenSSH checks ``~/.ssh``. Every directory from ``/``
    down must be owned by root or by this user and writable by nobody else
    (a sticky directory such as ``/tmp`` is allowed, since others cannot
    rename what they do not own); the directory itself must be this user's
    own and must not be a symlink. Missing directories are created with mode
    0700 whatever the umask. The directory is then held open, and every entry
    and lock file is opened relative to it without following symlinks, so
    renaming an ancestor later changes nothing. An entry file that is not a
    regular file of this user with mode 0600 (one planted by root, left by
    another account, or made readable by others) is a *forged* entry: never
    read, reported, and overwritten. What remains is that anything running as
    the same user (and root) can read the entries, as it could read
    ``~/.aws/credentials``. Prefer a directory on a memory file system
    (``/run``, ``/dev/shm``) so that credentials never reach a disk, and do
    not point it at a network file system: ``flock`` is not reliable there,
    and the entries would leave the host.

    ``clock`` gives the wall-clock time used for the entries' deadlines (all
    processes on one host share it); tests inject a fake one.

    Raises ``ValueError`` naming the unsafe directory if any directory on the
    way fails a check, and ``OSError`` on a system without ``openat`` and
    ``flock`` (FileCache is for POSIX hosts).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a path, got {type(directory).__name__}")
        if os.name != "posix" or os.open not in os.supports_dir_fd:
            raise OSError("FileCache needs a POSIX system (openat, O_NOFOLLOW and flock)")
        path = os.path.abspath(os.fspath(directory))
        self._fd = open_private_directory(path, label="FileCache")
        #: Descriptors of directories that were removed: never closed before
        #: the cache is, since a thread may still be using one, and a closed
        #: number could be reused for another directory.
        self._held = [self._fd]
        weakref.finalize(self, _close_all, self._held)
        self._reopening = threading.Lock()
        renew_after_fork(self, "_reopening", threading.Lock)
        self._directory = path
        self._clock = clock
        self._euid = os.geteuid()
        #: A label for logs and events: the directory, which is not a secret.
        self.name = f"FileCache({path})"

    @property
    def directory(self) -> str:
        """The absolute path of the cache directory, as it was when it was checked."""
        return self._directory

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def load(self, key: str) -> bytes | None:
        """The entry stored under ``key``, or ``None`` if there is none that is still valid.

        A missing file, an expired entry and a corrupt file are all misses
        (the next :meth:`store` overwrites them). A file that this user did
        not write (see the class docstring) raises
        :class:`~botocreds._cache.ForgedEntry` without being read. Any other
        error of the file system (permission denied, I/O error…) raises
        :class:`CacheUnavailable`, so the caller falls back to its source.
        """
        name = _file_name(key, ".json")
        try:
            # O_NONBLOCK: a FIFO planted at the entry's name must not block a mint.
            fd = os.open(
                name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                dir_fd=self._fd,
            )
        except FileNotFoundError:
            self._check_still_there()
            return None
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.EMLINK):
                raise ForgedEntry(f"{self._where(name)} is a symlink") from None
            raise CacheUnavailable(_describe(error, "cannot read", self._where(name))) from None
        try:
            info = os.fstat(fd)
            problem = self._not_ours(info)
            if problem is not None:
                raise ForgedEntry(f"{self._where(name)} {problem}")
            if info.st_size > MAX_FILE_BYTES:
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            raise CacheUnavailable(_describe(error, "cannot read", self._where(name))) from None
        finally:
            os.close(fd)
        return self._unwrap(raw)

    def _not_ours(self, info: os.stat_result) -> str | None:
        """What makes a file one this user's botocreds did not write, or ``None``."""
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file"
        if info.st_uid != self._euid:
            return f"is owned by uid {info.st_uid}, not by this user (uid {self._euid})"
        if info.st_mode & 0o077:
            return f"has mode {stat.S_IMODE(info.st_mode):04o}, not {FILE_MODE:04o}"
        return None

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
        except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
            return None

    def store(self, key: str, entry: bytes, ttl: float) -> None:
        """Store ``entry`` under ``key`` for ``ttl`` seconds, replacing any older entry.

        The write is atomic: a temporary file (mode 0600) in the cache
        directory is written, flushed and synced, then renamed over
        ``<key>.json``, replacing whatever was there, a forged entry
        included. A ``ttl`` of zero or less stores nothing, since such an
        entry would already be expired. Raises :class:`CacheUnavailable` if the
        file system refuses (disk full, read-only, permission denied…).
        """
        name = _file_name(key, ".json")
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
        temporary = f".{key}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, FILE_MODE, dir_fd=self._fd)
        except OSError as error:
            self._check_still_there()
            raise CacheUnavailable(_describe(error, "cannot write to", self._directory)) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(fd, FILE_MODE)  # the umask may have cleared the owner's bits
                handle.write(wrapper)
                handle.flush()
                os.fsync(fd)
            os.replace(temporary, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self._fd)
            raise CacheUnavailable(_describe(error, "cannot write", self._where(name))) from None

    @contextlib.contextmanager
    def lock(self, key: str, *, lease: float, wait: float) -> Iterator[bool]:
        """Hold ``<key>.lock``: yields ``True`` once acquired, ``False`` after ``wait`` seconds.

        The lock is an exclusive ``flock`` on the lock file, which excludes
        other processes and other threads of this one alike (each call opens
        the file anew). The kernel drops it when its holder exits for any
        reason, even ``SIGKILL``, so a dead holder frees it at once and
        ``lease`` is not needed (it is accepted for the
        :class:`~botocreds._cache.SharedCache` protocol and ignored). A
        waiting process tries again every :data:`LOCK_POLL_INTERVAL` seconds
        until ``wait`` seconds have passed on the monotonic clock. Not
        reentrant: do not nest two ``lock()`` of one key in one thread.
        Raises :class:`CacheUnavailable` if the lock file cannot be opened or
        is not this user's own regular file.
        """
        name = _file_name(key, ".lock")
        fd = self._open_lock(name)
        try:
            acquired = _flock(fd, wait, self._where(name))
        except BaseException:
            os.close(fd)
            raise
        try:
            yield acquired
        finally:
            try:
                if acquired:
                    _unlock(fd, self._where(name))
            finally:
                os.close(fd)

    def _open_lock(self, name: str) -> int:
        # No O_TRUNC, and no following a symlink: a planted link must never
        # make this process truncate or create a file elsewhere.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(name, flags, FILE_MODE, dir_fd=self._fd)
        except OSError as error:
            self._check_still_there()
            raise CacheUnavailable(_describe(error, "cannot lock", self._where(name))) from None
        try:
            problem = self._not_ours(os.fstat(fd))
        except OSError as error:
            os.close(fd)
            raise CacheUnavailable(_describe(error, "cannot lock", self._where(name))) from None
        if problem is not None:
            os.close(fd)
            raise CacheUnavailable(f"cannot lock {self._where(name)}: it {problem}")
        return fd

    def _check_still_there(self) -> None:
        """Raise :class:`CacheUnavailable` if the directory held was removed, after reopening.

        A cleaner such as ``systemd-tmpfiles`` may remove the directory under
        running processes. The next operation then opens and checks the path
        afresh (creating it again if it is missing), so sharing resumes; if
        that fails, the cache stays unavailable until it succeeds.
        """
        held = self._fd
        try:
            removed = os.fstat(held).st_nlink == 0
        except OSError:
            removed = True
        if not removed:
            return
        with self._reopening:
            if self._fd == held:
                try:
                    self._fd = open_private_directory(self._directory, label="FileCache")
                except ValueError as error:
                    raise CacheUnavailable(f"{self._directory} was removed, and {error}") from None
                self._held.append(self._fd)
        raise CacheUnavailable(f"{self._directory} was removed; it is open again, checked anew")

    def _where(self, name: str) -> str:
        return os.path.join(self._directory, name)


def _close_all(descriptors: list[int]) -> None:
    for fd in descriptors:
        close_quietly(fd)


def _file_name(key: str, suffix: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"FileCache keys are 1 to 200 of [A-Za-z0-9_-], got {key!r}")
    return key + suffix


def _flock(fd: int, wait: float, where: str) -> bool:
    """Take an exclusive ``flock`` on ``fd`` within ``wait`` seconds; whether it was taken."""
    import fcntl  # POSIX only, like the rest of this module; loaded with the first lock

    deadline = time.monotonic() + max(0.0, float(wait))
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(LOCK_POLL_INTERVAL, remaining))
        except OSError as error:
            raise CacheUnavailable(_describe(error, "cannot lock", where)) from None


def _unlock(fd: int, where: str) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError as error:
        # Closing the descriptor drops the lock anyway; an error here must
        # not hide the caller's result.
        logger.warning("botocreds: %s", _describe(error, "cannot unlock", where))


def _describe(error: OSError, action: str, path: str) -> str:
    return f"{action} {path}: {os_reason(error)}"
