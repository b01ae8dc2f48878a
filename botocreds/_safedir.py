"""Opening a directory that nobody but its owner and root can change, checked like StrictModes.

An entry in a directory is only as trustworthy as every directory above it:
whoever can write to an ancestor can rename the directory below it away and
put one of their own in its place, entries included. So, as OpenSSH's
``StrictModes`` does for ``~/.ssh``, every directory from ``/`` down must be
owned by root or by the current user and writable by nobody else. A sticky
directory such as ``/tmp`` is the one exception: others may write to it, but
they cannot rename or remove what they do not own, so it is safe provided the
next directory down belongs to root or the user, which is checked in turn.

The checks are made on descriptors, not names: each directory is opened with
``O_NOFOLLOW`` relative to the descriptor of its parent and ``fstat``-ed, so
what was checked is what is held, and a symlink or a swap in mid-walk is
refused rather than followed. The caller keeps the last descriptor and opens
everything relative to it, so a later rename of any ancestor cannot change
which directory it uses.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

#: The mode of every directory this module creates, whatever the umask.
DIRECTORY_MODE = 0o700

_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def directory_flags() -> int:
    """``open()`` flags for a directory that must not be a symlink (POSIX only)."""
    return os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_private_directory(path: str, *, label: str) -> int:
    """Open the directory ``path``, creating what is missing with mode 0700, checked from ``/``.

    ``path`` must be absolute. Symlinks among its ancestors (``/var/run`` to
    ``/run``) are resolved once, and every real directory on the way is
    checked; ``path`` itself must not be a symlink. The directory itself must
    be owned by the current user and writable by nobody else.

    Returns a descriptor the caller owns. Raises ``ValueError`` naming the
    first directory that fails a check (``label`` starts the message), and
    leaves no descriptor open.
    """
    name = os.path.basename(path)
    parent = os.path.realpath(os.path.dirname(path))
    names = [part for part in parent.split(os.sep) if part]
    if name:
        names.append(name)
    euid = os.geteuid()
    held = _open_root(label)
    walked = os.sep
    try:
        _check_ancestor(held, walked, label, euid, last=not names)
        for index, part in enumerate(names):
            walked = os.path.join(walked, part)
            child = _open_or_create(held, part, walked, label)
            os.close(held)
            held = child
            _check_ancestor(held, walked, label, euid, last=index == len(names) - 1)
    except BaseException:
        os.close(held)
        raise
    return held


def _open_root(label: str) -> int:
    try:
        return os.open(os.sep, directory_flags())
    except OSError as error:
        raise ValueError(f"{label}: cannot open {os.sep}: {os_reason(error)}") from None


def _open_or_create(parent: int, name: str, path: str, label: str) -> int:
    """Open ``name`` under the directory ``parent``; create it (mode 0700) if it is missing."""
    try:
        return os.open(name, directory_flags(), dir_fd=parent)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise ValueError(_open_problem(error, path, label)) from None
    try:
        os.mkdir(name, DIRECTORY_MODE, dir_fd=parent)
    except FileExistsError:  # made by another process meanwhile: checked like any other
        created = False
    except OSError as error:
        raise ValueError(f"{label}: cannot create {path}: {os_reason(error)}") from None
    else:
        created = True
    try:
        child = os.open(name, directory_flags(), dir_fd=parent)
    except OSError as error:
        raise ValueError(_open_problem(error, path, label)) from None
    if created:
        # mkdir's mode passes through the umask, which can only clear bits; a
        # umask such as 0o277 would leave a directory its owner cannot write.
        try:
            os.fchmod(child, DIRECTORY_MODE)
        except OSError as error:
            os.close(child)
            raise ValueError(f"{label}: cannot chmod {path}: {os_reason(error)}") from None
    return child


def _open_problem(error: OSError, path: str, label: str) -> str:
    if error.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a symlink
        return (
            f"{label}: {path} is a symlink; give the real directory, so that nobody can "
            "point the cache somewhere else"
        )
    if error.errno == errno.ENOTDIR:
        return f"{label}: {path} exists and is not a directory"
    if error.errno == errno.ENOENT:
        return f"{label}: {path} disappeared while it was being checked"
    return f"{label}: cannot open {path}: {os_reason(error)}"


def _check_ancestor(fd: int, path: str, label: str, euid: int, *, last: bool) -> None:
    """Refuse ``path`` (open as ``fd``) unless nobody but root and this user can change it."""
    info = os.fstat(fd)
    mode = stat.S_IMODE(info.st_mode)
    who = "everyone" if info.st_mode & stat.S_IWOTH else "its group"
    if last:
        if info.st_uid != euid:
            raise ValueError(
                f"{label}: {path} is owned by uid {info.st_uid}, not by this user "
                f"(uid {euid}); credentials must live in a directory of your own"
            )
        if info.st_mode & _WRITABLE_BY_OTHERS:
            raise ValueError(
                f"{label}: {path} is writable by {who} (mode {mode:04o}); other users could "
                f"plant or swap credentials: chmod 700 {path}"
            )
        return
    if info.st_uid not in (0, euid):
        raise ValueError(
            f"{label}: {path} is owned by uid {info.st_uid}, neither root nor this user "
            f"(uid {euid}); its owner could swap the cache directory for another"
        )
    if info.st_mode & _WRITABLE_BY_OTHERS and not info.st_mode & stat.S_ISVTX:
        raise ValueError(
            f"{label}: {path} is writable by {who} (mode {mode:04o}) and not sticky; other "
            "users could swap the cache directory for another: use a directory whose "
            "ancestors only root and you can write to"
        )


def os_reason(error: OSError) -> str:
    """Why the operating system refused, e.g. ``'Permission denied'``: never a file's content."""
    return error.strerror or errno.errorcode.get(error.errno or 0, "") or type(error).__name__


def close_quietly(fd: int) -> None:
    """Close a descriptor that may already be gone (at interpreter exit)."""
    with contextlib.suppress(OSError):
        os.close(fd)
