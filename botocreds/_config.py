"""Configuration without code: botocreds' settings from the environment and the AWS config file.

``botocreds.install()`` and the botocore client plugin take their settings from
two places, so that a program is covered without a change to its code:

* environment variables named ``BOTOCREDS_<SETTING>``;
* keys named ``botocreds_<setting>`` in the profile's section of the AWS config
  file (``~/.aws/config``, or the file ``AWS_CONFIG_FILE`` names), beside the
  profile's own settings::

      [profile app]
      role_arn = arn:aws:iam::123456789012:role/app
      source_profile = base
      botocreds_floor = 120
      botocreds_cache = file:///run/botocreds

Precedence, setting by setting: what code passes wins (``install(policy=...)``
ignores every refresh timing setting below, ``install(cache=...)`` every cache
setting), then the environment, then the profile, then the default.

Refresh timing
--------------
Each is a field of :class:`~botocreds.RefreshPolicy`, with the same meaning,
default and validation; times are in seconds. Values are decimal numbers
(``30``, ``0.75``, ``1e3``), and ``failure_threshold`` a whole number (``5``).
Surrounding whitespace is ignored; an empty value, ``nan`` or ``inf`` is an
error.

* ``BOTOCREDS_FRACTION`` / ``botocreds_fraction`` (default 0.8): refresh once
  this share of the credentials' lifetime has passed; in (0, 1].
* ``BOTOCREDS_FLOOR`` / ``botocreds_floor`` (default 60): never refresh later
  than this long before expiry.
* ``BOTOCREDS_JITTER`` / ``botocreds_jitter`` (default 0.1): pull each refresh
  earlier by up to this share of the lifetime; in [0, 1).
* ``BOTOCREDS_MIN_INTERVAL`` / ``botocreds_min_interval`` (default 1): the
  least time between two mints of one source.
* ``BOTOCREDS_FAILURE_THRESHOLD`` / ``botocreds_failure_threshold`` (default 5):
  consecutive failed mints that open the circuit breaker; at least 1.
* ``BOTOCREDS_COOLDOWN`` / ``botocreds_cooldown`` (default 60): how long an open
  breaker refuses to mint before it lets one probe through.
* ``BOTOCREDS_WAIT_TIMEOUT`` / ``botocreds_wait_timeout`` (default 5): the
  longest a request waits for a mint when its credentials have expired.
* ``BOTOCREDS_STATIC_TTL`` / ``botocreds_static_ttl`` (default 900): how often
  credentials that never expire are fetched again; above 0.
* ``BOTOCREDS_BACKOFF_BASE`` / ``botocreds_backoff_base`` (default 1) and
  ``BOTOCREDS_BACKOFF_MAX`` / ``botocreds_backoff_max`` (default 60): retries
  after a failed mint wait a random time up to
  ``min(backoff_max, backoff_base * 2**(n-1))``.
* ``BOTOCREDS_MINT_TIMEOUT`` / ``botocreds_mint_timeout`` (default 120): a mint
  still running after this long is abandoned and counted as failed; above 0.

Shared cache tier
-----------------
* ``BOTOCREDS_CACHE`` / ``botocreds_cache``: where processes share credentials,
  as a URL:

  - ``file:///absolute/directory``: a :class:`~botocreds.FileCache` in that
    directory, for the processes of one host (created with mode 0700 if it
    does not exist; entries are protected by file permissions, not encrypted);
  - ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or
    ``unix:///path/to/redis.sock``: a :class:`~botocreds.RedisCache`, for a
    fleet. Its entries are encrypted with a key given as below; a Redis URL
    without a key is refused unless ``BOTOCREDS_CACHE_PLAINTEXT`` says
    otherwise.

  Unset, there is no shared tier: each process calls its source itself.
* ``BOTOCREDS_CACHE_KEY`` (environment only, never the config file): the
  Fernet key that encrypts Redis entries, or several separated by commas,
  newest first (entries are written with the first and read with any, for
  rotation: see :class:`~botocreds.RedisCache`). Make one with
  ``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``.
* ``BOTOCREDS_CACHE_KEY_FILE`` / ``botocreds_cache_key_file``: instead of
  ``BOTOCREDS_CACHE_KEY``, the absolute path (``~`` allowed) of a file holding
  the keys, one per line, newest first; blank lines and lines starting with
  ``#`` are ignored. The file must belong to the user the process runs as and
  be neither readable nor writable by its group or others (``chmod 600``).
  Setting both ``BOTOCREDS_CACHE_KEY`` and ``BOTOCREDS_CACHE_KEY_FILE`` is an
  error; ``BOTOCREDS_CACHE_KEY`` wins over ``botocreds_cache_key_file``.
* ``BOTOCREDS_CACHE_PLAINTEXT`` / ``botocreds_cache_plaintext``: ``1``,
  ``true``, ``yes`` or ``on`` (any case) lets a Redis cache without a key store
  credentials in clear text, readable by anyone who can read the Redis;
  ``0``, ``false``, ``no`` or ``off`` (the default) refuses it. Setting it
  true together with a key (``BOTOCREDS_CACHE_KEY`` or a key file) is an
  error, as ``RedisCache(url, key, plaintext=True)`` is: say which you mean.

A key given with a ``file://`` cache is an error (those entries are not
encrypted, and the key would suggest they are); keys given without any cache
are checked and otherwise unused.

Errors
------
A bad value raises :class:`ConfigError` (a ``ValueError`` whose ``setting``
attribute names the setting, e.g. ``BOTOCREDS_FLOOR`` or
``botocreds_floor (profile 'app')``) saying what the setting expects. An empty
value is an error for every setting: unset the variable instead. A missing
optional dependency (``botocreds[redis]``) is a
``ConfigError`` too, and so is any other ``BOTOCREDS_*`` variable or
``botocreds_*`` profile key, so that a typo such as ``BOTOCREDS_FLOR`` is not
silently ignored: the message lists the valid names (``BOTOCREDS_TEST_*`` is
botocreds' test suite's own, and is ignored). Messages never show a cache
key, a key file's content, or the user name, password or query string of a
URL.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import os
import re
import stat
import threading
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ._cache import SharedCache, check_cache, fernet_key
from ._forksafe import renew_after_fork
from ._policy import RefreshPolicy
from ._redact import describe_value

ENV_PREFIX = "BOTOCREDS_"
PROFILE_PREFIX = "botocreds_"
#: Environment variables of this prefix belong to the test suite, and are ignored.
TEST_PREFIX = "BOTOCREDS_TEST_"

#: Every RefreshPolicy field and its type, derived so a new field is a setting at once.
_KNOBS: dict[str, type] = {
    field.name: typing.get_type_hints(RefreshPolicy)[field.name]
    for field in dataclasses.fields(RefreshPolicy)
}

_CACHE = "cache"
_CACHE_KEY = "cache_key"
_CACHE_KEY_FILE = "cache_key_file"
_CACHE_PLAINTEXT = "cache_plaintext"
_CACHE_SETTINGS = (_CACHE, _CACHE_KEY, _CACHE_KEY_FILE, _CACHE_PLAINTEXT)

#: setting -> environment variable, in the documented order.
_ENV_NAMES: dict[str, str] = {s: ENV_PREFIX + s.upper() for s in (*_KNOBS, *_CACHE_SETTINGS)}
#: setting -> profile key; a key itself is never read from the config file.
_PROFILE_NAMES: dict[str, str] = {
    s: PROFILE_PREFIX + s for s in (*_KNOBS, *_CACHE_SETTINGS) if s != _CACHE_KEY
}

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_REDIS_SCHEMES = ("redis", "rediss", "unix")
#: The largest key file read: a few keys take well under a kilobyte.
MAX_KEY_FILE_BYTES = 64 * 1024
_GENERATE_HINT = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class ConfigError(ValueError):
    """A botocreds setting in the environment or the AWS config file is not usable.

    ``setting`` names it as the user wrote it: ``"BOTOCREDS_FLOOR"``, or
    ``"botocreds_floor (profile 'app')"``. The message names the setting and
    what it expects, and never holds a cache key, a key file's content or a
    URL's password.
    """

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(setting, problem)
        self.setting = setting
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.setting}: {self.problem}"


@dataclass(frozen=True)
class Settings:
    """What configuration decided: the refresh policy, and the shared cache tier if any."""

    policy: RefreshPolicy
    cache: SharedCache | None


def setting_names() -> tuple[str, ...]:
    """Every environment variable botocreds reads, in the documented order."""
    return tuple(_ENV_NAMES.values())


# -- reading values -------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """A setting's stripped text, and how to name it in an error."""

    text: str
    where: str


def _profile_label(key: str, profile_name: str | None) -> str:
    return f"{key} (profile {profile_name!r})" if profile_name else f"{key} (AWS config profile)"


def _lookup(
    setting: str,
    environ: Mapping[str, str],
    profile: Mapping[str, object],
    profile_name: str | None,
) -> _Value | None:
    """The environment's value of ``setting``, else the profile's, else ``None``."""
    places: list[tuple[str, Mapping[str, object], str]] = [
        (_ENV_NAMES[setting], environ, _ENV_NAMES[setting])
    ]
    if setting in _PROFILE_NAMES:
        key = _PROFILE_NAMES[setting]
        places.append((key, profile, _profile_label(key, profile_name)))
    for key, mapping, where in places:
        if key not in mapping:
            continue
        raw = mapping[key]
        if not isinstance(raw, str):
            raise ConfigError(where, f"expected a single text value, got {describe_value(raw)}")
        return _Value(raw.strip(), where)
    return None


def _check_names(
    environ: Mapping[str, str], profile: Mapping[str, object], profile_name: str | None
) -> None:
    """Refuse ``BOTOCREDS_*`` variables and ``botocreds_*`` keys that are no setting."""
    env_names = set(_ENV_NAMES.values())
    unknown = sorted(
        name
        for name in environ
        if isinstance(name, str)
        and name.startswith(ENV_PREFIX)
        and not name.startswith(TEST_PREFIX)
        and name not in env_names
    )
    if unknown:
        raise ConfigError(unknown[0], _not_a_setting(unknown[0], list(_ENV_NAMES.values())))
    profile_names = set(_PROFILE_NAMES.values())
    unknown = sorted(
        key
        for key in profile
        if isinstance(key, str) and key.startswith(PROFILE_PREFIX) and key not in profile_names
    )
    if not unknown:
        return
    where = _profile_label(unknown[0], profile_name)
    if unknown[0] == PROFILE_PREFIX + _CACHE_KEY:
        raise ConfigError(
            where,
            "a cache key does not belong in the AWS config file: set the environment "
            f"variable {_ENV_NAMES[_CACHE_KEY]}, or point {_PROFILE_NAMES[_CACHE_KEY_FILE]} "
            "at a file of mode 0600 that holds it",
        )
    raise ConfigError(where, _not_a_setting(unknown[0], list(_PROFILE_NAMES.values())))


def _not_a_setting(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"not a botocreds setting{hint}; the settings are {', '.join(valid)}"


def _shown(text: str) -> str:
    """A policy value as an error shows it: quoted, and cut short if long."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _number(value: _Value, kind: type) -> float | int:
    """An int field's whole number, or any other (float) field's decimal number."""
    if kind is int:
        if not _INT.fullmatch(value.text):
            raise ConfigError(
                value.where, f"expected a whole number such as 5, got {_shown(value.text)}"
            )
        return int(value.text)
    if not _FLOAT.fullmatch(value.text):
        raise ConfigError(
            value.where, f"expected a decimal number such as 30 or 0.75, got {_shown(value.text)}"
        )
    number = float(value.text)
    if math.isinf(number):
        raise ConfigError(value.where, f"expected a finite number, got {_shown(value.text)}")
    return number


def _policy_from(
    environ: Mapping[str, str], profile: Mapping[str, object], profile_name: str | None
) -> RefreshPolicy:
    """The default policy with every configured knob, validated as RefreshPolicy does."""
    default = RefreshPolicy()
    # Any: the values are checked by RefreshPolicy itself, field by field.
    overrides: dict[str, typing.Any] = {}
    places: list[str] = []
    for knob, kind in _KNOBS.items():
        value = _lookup(knob, environ, profile, profile_name)
        if value is None:
            continue
        single: dict[str, typing.Any] = {knob: _number(value, kind)}
        try:  # one knob at a time, so that an error names the setting at fault
            dataclasses.replace(default, **single)
        except (TypeError, ValueError) as error:
            raise ConfigError(value.where, str(error)) from None
        overrides.update(single)
        places.append(value.where)
    try:
        return dataclasses.replace(default, **overrides)
    except (TypeError, ValueError) as error:  # a rule between fields, should one be added
        raise ConfigError(", ".join(places), str(error)) from None


def _flag(value: _Value) -> bool:
    word = value.text.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ConfigError(
        value.where,
        f"expected 1, true, yes or on, or 0, false, no or off, got {_shown(value.text)}",
    )


# -- the shared cache: what is asked for (pure), then building it (effects) ------


def redact_url(url: str) -> str:
    """``url`` as messages show it: no user name or password, no query string.

    ``redis://:secret@host:6379/0?password=x`` becomes ``redis://***@host:6379/0?***``.
    A value that is not ``scheme://...`` at all is shown only by its length, since
    it may be a secret put in the wrong variable.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return f"a value of {len(url)} characters that is not a URL"
    cut = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if found != -1:
            cut = min(cut, found)
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    path, query, _ = tail.partition("#")[0].partition("?")
    return f"{scheme}://{netloc}{path}{'?***' if query else ''}"


@dataclass(frozen=True)
class _FileRequest:
    directory: str
    where: str


@dataclass(frozen=True)
class _RedisRequest:
    url: str = dataclasses.field(repr=False)
    shown: str
    where: str
    keys: tuple[bytes, ...] | None = dataclasses.field(default=None, repr=False)
    key_file: _Value | None = None


def _keys_from_text(items: list[str], where: str, *, noun: str) -> tuple[bytes, ...]:
    """The Fernet keys among ``items`` (blank ones skipped), checked; never shown.

    Each error is raised outside the ``except`` that noticed it, so that no
    chained exception (whose message could quote a key) goes with it.
    """
    keys = []
    for number, item in enumerate((i.strip() for i in items), start=1):
        if not item:
            continue
        checked = _fernet_key_or_none(item)
        if checked is None:
            raise ConfigError(
                where,
                f"{noun} {number} is not a Fernet key (32 url-safe base64-encoded bytes, "
                f"44 characters); make one with {_GENERATE_HINT}",
            )
        keys.append(checked)
    if not keys:
        raise ConfigError(where, f"holds no Fernet key; make one with {_GENERATE_HINT}")
    return tuple(keys)


def _fernet_key_or_none(text: str) -> bytes | None:
    try:
        return fernet_key(text)
    except (TypeError, ValueError, UnicodeError):
        return None


def _cache_request(
    environ: Mapping[str, str], profile: Mapping[str, object], profile_name: str | None
) -> _FileRequest | _RedisRequest | None:
    """What the cache settings ask for, checked before any I/O."""
    location = _lookup(_CACHE, environ, profile, profile_name)
    key = _lookup(_CACHE_KEY, environ, profile, profile_name)
    key_file = _lookup(_CACHE_KEY_FILE, environ, profile, profile_name)
    plaintext = _lookup(_CACHE_PLAINTEXT, environ, profile, profile_name)
    allow_plaintext = _flag(plaintext) if plaintext is not None else False
    if key is not None and key_file is not None and key_file.where == _ENV_NAMES[_CACHE_KEY_FILE]:
        raise ConfigError(
            f"{key.where}, {key_file.where}", "set one of them, not both: they both give the key"
        )
    keys = _keys_from_text(key.text.split(","), key.where, noun="key") if key is not None else None
    if key is not None:
        key_file = None  # the environment's key wins over the profile's key file
    if key_file is not None:
        key_file = _Value(_key_file_path(key_file), key_file.where)
    if location is None:
        return None
    url, where = location.text, location.where
    if not url:
        raise ConfigError(where, "is empty: give a file:/// or redis:// URL, or unset it")
    shown = redact_url(url)
    if "://" not in url:
        hint = f" (for a directory, file://{url})" if url.startswith("/") else ""
        raise ConfigError(
            where,
            "expected a URL: file:///absolute/directory, redis://host:6379/0, "
            f"rediss://host:6379/0 or unix:///path/to/redis.sock; got {shown}{hint}",
        )
    scheme = url.partition("://")[0].lower()
    given = key if key is not None else key_file
    if scheme == "file":
        if given is not None:
            raise ConfigError(
                given.where,
                f"{where} is a file:// cache, whose entries are protected by file permissions "
                "and not encrypted: unset the key, or use a Redis cache",
            )
        return _FileRequest(_file_directory(url, shown, where), where)
    if scheme not in _REDIS_SCHEMES:
        raise ConfigError(
            where,
            f"expected a file://, redis://, rediss:// or unix:// URL, got {shown}",
        )
    if given is not None and plaintext is not None and allow_plaintext:
        raise ConfigError(
            f"{plaintext.where}, {given.where}",
            "set one of them, not both: a key encrypts the Redis entries, and "
            f"{_ENV_NAMES[_CACHE_PLAINTEXT]} asks for them unencrypted",
        )
    if keys is None and key_file is None and not allow_plaintext:
        raise ConfigError(
            where,
            f"{shown} is a Redis cache, whose entries are live AWS credentials: give the "
            f"encryption key in {_ENV_NAMES[_CACHE_KEY]} or {_ENV_NAMES[_CACHE_KEY_FILE]} "
            f"(make one with {_GENERATE_HINT}), or set {_ENV_NAMES[_CACHE_PLAINTEXT]}=1 to "
            "store them unencrypted",
        )
    return _RedisRequest(scheme + url[len(scheme) :], shown, where, keys, key_file)


def _file_directory(url: str, shown: str, where: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(where, f"expected file:///absolute/directory, got {shown}") from None
    if parts.netloc:
        raise ConfigError(
            where,
            f"expected file:///absolute/directory (three slashes, no host), got {shown}",
        )
    if parts.query or parts.fragment:
        raise ConfigError(where, f"a file:// URL takes no query or fragment, got {shown}")
    directory = unquote(parts.path)
    if not directory.startswith("/") or "\x00" in directory:
        raise ConfigError(
            where, f"expected file:///absolute/directory, with an absolute path, got {shown}"
        )
    return os.path.normpath(directory)


def _key_file_path(value: _Value) -> str:
    path = os.path.expanduser(value.text)
    if not path or not os.path.isabs(path) or "\x00" in path:
        raise ConfigError(
            value.where, f"expected the absolute path of a key file, got {_shown(value.text)}"
        )
    return path


def _read_key_file(value: _Value) -> tuple[bytes, ...]:
    """The keys in a key file that only this user can read or write."""
    path, where = value.text, value.where
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise ConfigError(where, f"cannot open {path}: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(where, f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise ConfigError(
                where,
                f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}): "
                "a key file must be your own",
            )
        if info.st_mode & 0o077:
            raise ConfigError(
                where,
                f"{path} has mode {stat.S_IMODE(info.st_mode):04o}, so its group or others can "
                f"read or replace the key: chmod 600 {path}",
            )
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            raw = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(where, f"cannot read {path}: {error.strerror}") from None
    finally:
        if fd != -1:
            os.close(fd)
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise ConfigError(where, f"{path} is larger than a key file ({MAX_KEY_FILE_BYTES} bytes)")
    if not raw.isascii():  # decode() would raise an error that holds the content
        raise ConfigError(where, f"{path} holds something other than Fernet keys")
    lines = ["" if line.lstrip().startswith("#") else line for line in raw.decode().splitlines()]
    return _keys_from_text(lines, where, noun="line")


class _Caches:
    """Every cache built from configuration, so the same settings give the same object."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (kind, sha256 of the location, sha256 of the key material or "") -> cache
        self.built: dict[tuple[str, str, str], SharedCache] = {}


_caches = _Caches()
renew_after_fork(_caches, "lock", threading.Lock)


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\n".join(parts)).hexdigest()


def _build(request: _FileRequest | _RedisRequest) -> SharedCache:
    if isinstance(request, _FileRequest):
        memo = ("file", _digest(request.directory.encode("utf-8", "surrogateescape")), "")
        return _memoized(memo, lambda: _file_cache(request))
    keys = _read_key_file(request.key_file) if request.key_file is not None else request.keys
    material = "" if keys is None else _digest(*keys)
    memo = ("redis", _digest(request.url.encode("utf-8", "surrogateescape")), material)
    return _memoized(memo, lambda: _redis_cache(request, keys))


def _memoized(memo: tuple[str, str, str], build: typing.Callable[[], SharedCache]) -> SharedCache:
    # Built under the lock, so two threads never make two caches for one setting.
    with _caches.lock:
        cache = _caches.built.get(memo)
        if cache is None:
            cache = _caches.built[memo] = build()
        return cache


def _file_cache(request: _FileRequest) -> SharedCache:
    from ._filecache import FileCache

    try:
        return FileCache(request.directory)
    except (ImportError, ValueError, OSError) as error:
        raise ConfigError(request.where, str(error)) from None


def _redis_cache(request: _RedisRequest, keys: tuple[bytes, ...] | None) -> SharedCache:
    from ._rediscache import RedisCache

    # The ConfigError is raised outside the except clauses, so that it chains
    # no exception: redis-py's could quote the URL, password included.
    try:
        if keys is None:  # _cache_request allows no key only with the plaintext flag
            return RedisCache(request.url, plaintext=True)
        return RedisCache(request.url, list(keys))
    except ImportError as error:
        problem = _scrub(str(error), request.url)
    except (TypeError, ValueError) as error:
        problem = f"cannot use {request.shown}: {_scrub(str(error), request.url)}"
    raise ConfigError(request.where, problem)


def _scrub(text: str, url: str) -> str:
    """``text`` without any part of ``url`` that may be a secret."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL: say nothing of what the error says
        return "the URL is malformed"
    userinfo = parts.netloc.rpartition("@")[0]
    secrets = [url, userinfo, *userinfo.split(":"), parts.query]
    for name, _, value in (item.partition("=") for item in parts.query.split("&")):
        if name.lower() in ("password", "username", "user"):
            secrets.append(value)
    secrets += [unquote(s) for s in secrets]
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# -- the whole ------------------------------------------------------------------


def settings_from(
    environ: Mapping[str, str],
    profile: Mapping[str, object],
    *,
    profile_name: str | None = None,
    base_policy: RefreshPolicy | None = None,
    cache: SharedCache | None = None,
) -> Settings:
    """The settings that ``environ`` and a profile's section of the AWS config file give.

    ``base_policy`` and ``cache`` are what code passed explicitly, and win:
    with ``base_policy`` the refresh timing settings are not read, with
    ``cache`` the cache settings are not. Only ``botocreds_*`` keys of
    ``profile`` are read (botocore's parsed config may hold nested sections
    there too). Every value is checked before any I/O; the only effects are
    reading a key file and building (or finding again) the cache, so the
    same settings give back the same cache object. Raises :class:`ConfigError`.
    """
    if not isinstance(environ, Mapping):
        raise TypeError(f"environ must be a mapping, got {type(environ).__name__}")
    if not isinstance(profile, Mapping):
        raise TypeError(f"profile must be a mapping, got {type(profile).__name__}")
    if profile_name is not None and not isinstance(profile_name, str):
        raise TypeError(f"profile_name must be a string or None, got {type(profile_name).__name__}")
    if base_policy is not None and not isinstance(base_policy, RefreshPolicy):
        raise TypeError(
            f"base_policy must be a botocreds.RefreshPolicy, got {type(base_policy).__name__}"
        )
    check_cache(cache)
    _check_names(environ, profile, profile_name)
    policy = (
        base_policy if base_policy is not None else _policy_from(environ, profile, profile_name)
    )
    if cache is not None:
        return Settings(policy, cache)
    request = _cache_request(environ, profile, profile_name)
    return Settings(policy, None if request is None else _build(request))
