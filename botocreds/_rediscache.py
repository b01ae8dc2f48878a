"""A shared cache tier in Redis, for a fleet of processes on many hosts.

Every process of every host that points at the same Redis (and prefix) shares
one entry per role: the first process whose refresh comes due takes a
fleet-wide lock, calls the source and writes the answer back with a TTL of its
expiry minus the floor; the others adopt that entry without calling the source.

Security trade-off
------------------
Putting credentials in a shared store widens who can read them: anyone who can
``GET`` the key (another service on the same Redis, a backup, ``MONITOR``, a
replica, a memory dump) can read live AWS credentials for the role, and anyone
who can ``SET`` it can make every process sign with credentials of their
choosing (an entry's name follows from the role, so it is easy to compute).
So a RedisCache needs ``key=``: every entry is encrypted and authenticated with
Fernet (AES-128-CBC plus HMAC-SHA256, from ``cryptography``); a Redis reader
without the key learns nothing but the entry's size and TTL, and a Redis writer
without the key cannot forge an entry (it is rejected as a miss). Storing
entries in the clear takes an explicit ``plaintext=True``, and is logged as a
warning. Encryption does not protect against a writer deleting entries or
taking locks, which only costs extra source calls. Use Redis ACLs and TLS
(``rediss://``) as well; keep the Fernet key in your secret store, not next to
the Redis URL.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ._cache import CacheUnavailable, ForgedEntry, fernet_key

if TYPE_CHECKING:
    import redis
    from cryptography.fernet import MultiFernet

logger = logging.getLogger("botocreds")

_INSTALL_HINT = "pip install 'botocreds[redis]'"

#: Socket timeouts used for a URL unless its query string says otherwise, so an
#: unreachable Redis fails within seconds and the source is called directly.
DEFAULT_SOCKET_TIMEOUT = 2.0

#: Deletes the lock only if it still holds our token: a holder whose lease
#: expired (and whose lock another process has since taken) deletes nothing.
_RELEASE_SCRIPT = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""

#: The largest entry stored or read, as in Redis (after encryption). A real
#: entry is under 4 KiB; anything larger was not written by botocreds, and is
#: never transferred: a reader must not allocate whatever a Redis writer chose.
MAX_ENTRY_BYTES = 64 * 1024

#: Returns the entry if it is a string of at most ARGV[1] bytes; otherwise
#: nil if there is none, and an integer without transferring the value: -1 for
#: a key of another type (a list, a hash…), else the string's length.
_READ_SCRIPT = """
local kind = redis.call("type", KEYS[1])["ok"]
if kind == "none" then
    return false
end
if kind ~= "string" then
    return -1
end
local size = redis.call("strlen", KEYS[1])
if size > tonumber(ARGV[1]) then
    return size
end
return redis.call("get", KEYS[1])
"""

#: How long a waiter sleeps between two attempts at a taken lock (plus jitter).
_POLL = 0.02
_POLL_MAX = 0.1


class RedisCache:
    """A :class:`~botocreds._cache.SharedCache` in Redis: one credential fetch per role per
    lifetime for a whole fleet.

    ``url_or_client`` is a Redis URL (``redis://``, ``rediss://`` or
    ``unix://``) or an existing ``redis.Redis`` client. A URL gets short socket
    timeouts (2 s, overridable in its query string, e.g. ``?socket_timeout=5``)
    and one immediate retry, so an unreachable Redis costs a request at most a
    few seconds before botocreds calls the source directly. Constructing does
    not connect: redis-py connects on the first command.

    ``key`` encrypts and authenticates every entry (needs ``cryptography``).
    It is a Fernet key (``cryptography.fernet.Fernet.generate_key()``) or a
    sequence of them for rotation: entries are encrypted with the first key and
    decrypted with any of them. Each entry is also bound to its Redis key, so a
    ciphertext copied under another role's key is rejected. An entry that does
    not decrypt (another key, tampered, forged, or plaintext) is a miss, never
    an error: the refresher calls the source and overwrites it. Every process
    sharing a prefix should use the same keys.

    ``plaintext=True`` instead stores entries unencrypted: any client of that
    Redis can then read every role's credentials, and forge entries that every
    process adopts. Give one of ``key=`` and ``plaintext=True``: without
    either, or with both, the constructor raises :class:`ValueError`. A
    plaintext RedisCache logs one warning when it is made.

    ``prefix`` (default ``"botocreds:"``) is the namespace: it is put in front
    of every Redis key (entries under ``prefix + key``, locks under
    ``prefix + "lock:" + key``). Two applications, or environments, sharing
    one Redis must use different prefixes, or they share each other's entries
    whenever they name a source alike; every process of one application must
    use the same prefix. Within a prefix, each entry's name is a hash of its
    source's identity (role ARN, session name, region…), so two sources that
    differ in any part of it never share an entry.

    Entries are bounded: one larger than 64 KiB in Redis is never written and
    never read (its value is not transferred), and neither is a key of another
    type (a list, a hash…) under an entry's name. Since botocreds writes
    neither, either one is a forged entry: a miss, reported (a
    ``SharedCacheFailed`` event and one warning), and overwritten.

    Rotating the key without a burst of source calls:

    1. deploy ``key=[old, new]`` everywhere (still writes with ``old``, reads both);
    2. then deploy ``key=[new, old]`` (writes with ``new``, still reads ``old``);
    3. after one credential lifetime every ``old`` entry has expired (its TTL
       never exceeds its credentials' expiry): deploy ``key=new``.

    Skipping a step is safe; it only costs one extra source call per role for
    each process that meets an entry it cannot read.

    Failures: any Redis error (refused, timed out, auth, read-only replica…)
    raises :class:`~botocreds._cache.CacheUnavailable` from :meth:`load`,
    :meth:`store` and :meth:`lock`; the refresher then calls its source
    directly and logs the outage once. The client is safe to share between
    threads, and redis-py reopens its connections in a forked child.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        key: str | bytes | Sequence[str | bytes] | None = None,
        *,
        plaintext: bool = False,
        prefix: str = "botocreds:",
    ) -> None:
        if not isinstance(plaintext, bool):
            raise TypeError(f"plaintext must be True or False, got {type(plaintext).__name__}")
        if key is None and not plaintext:
            raise ValueError(
                "RedisCache needs key= (a Fernet key, to encrypt and authenticate the "
                "credentials it stores) or plaintext=True (to store them unencrypted, "
                "readable and forgeable by any client of that Redis)"
            )
        if key is not None and plaintext:
            raise ValueError("RedisCache takes key= or plaintext=True, not both")
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as error:
            raise ImportError(f"botocreds.RedisCache needs redis-py: {_INSTALL_HINT}") from error
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
        keys = _check_keys(key)
        self._fernet = _make_fernet(keys) if keys else None
        if isinstance(url_or_client, str):
            if not url_or_client.strip():
                raise ValueError("RedisCache needs a Redis URL such as redis://host:6379/0")
            if not url_or_client.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(
                    "the Redis URL must start with redis://, rediss:// or unix:// "
                    f"(got one starting {url_or_client.split(':', 1)[0]!r})"
                )
            client: redis.Redis = redis.Redis.from_url(
                url_or_client,
                socket_timeout=DEFAULT_SOCKET_TIMEOUT,
                socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 1),
            )
        elif isinstance(url_or_client, redis.Redis):
            client = url_or_client
            settings = client.connection_pool.connection_kwargs
            if settings.get("socket_timeout") is None:
                logger.warning(
                    "botocreds: RedisCache got a redis.Redis client without socket_timeout: "
                    "an unreachable Redis would stall each mint until mint_timeout; "
                    "pass socket_timeout= (a URL gets %ss)",
                    DEFAULT_SOCKET_TIMEOUT,
                )
        else:
            raise TypeError(
                "RedisCache needs a Redis URL or a redis.Redis client, "
                f"got {type(url_or_client).__name__}"
            )
        self._client = client
        self._prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._read = client.register_script(_READ_SCRIPT)
        #: A label for logs and events, e.g. ``"RedisCache(redis://host:6379/0)"``:
        #: never a password, username or query string.
        self.name = f"RedisCache({_describe(client)})"
        if plaintext:
            logger.warning(
                "botocreds: %s stores credentials unencrypted (plaintext=True): any client "
                "of that Redis can read them, and forge entries that every process adopts; "
                "pass key= to encrypt and authenticate them",
                self.name,
            )

    @property
    def encrypted(self) -> bool:
        """Whether entries are encrypted at rest (``key=`` was given)."""
        return self._fernet is not None

    def __repr__(self) -> str:
        return f"<{self.name} prefix={self._prefix!r} encrypted={self.encrypted}>"

    def load(self, key: str) -> bytes | None:
        """The entry under ``key``, or ``None`` if there is none or it cannot be read.

        An entry larger than :data:`MAX_ENTRY_BYTES`, a key of another type
        under its name, or any reply that is not a string raises
        :class:`~botocreds._cache.ForgedEntry` without the value being
        transferred. With ``key=``, an entry that fails to decrypt or
        authenticate (another key, tampered, plaintext, or copied from another
        Redis key) is ``None``: a fleet in the middle of a key rotation
        produces those legitimately. Raises
        :class:`~botocreds._cache.CacheUnavailable` if Redis cannot be used.
        """
        name = self._entry_name(key)
        try:
            value = self._read(keys=[name], args=[MAX_ENTRY_BYTES])
        except self._errors as error:
            raise self._unavailable("GET", error) from error
        if value is None:
            return None
        raw = _entry_bytes(value)
        if raw is None:
            raise ForgedEntry(f"the value under {name} is {_reply_problem(value)}")
        if self._fernet is None:
            return raw
        return self._open(key, raw)

    def store(self, key: str, entry: bytes, ttl: float) -> None:
        """Write ``entry`` under ``key`` with a TTL of ``ttl`` seconds (``SET … PX``).

        The TTL is rounded down to the millisecond, so an entry never outlives
        what the caller asked for; a TTL under a millisecond writes nothing, and
        so does an entry larger than :data:`MAX_ENTRY_BYTES` once encrypted
        (logged at debug level: no reader would accept it).
        Raises :class:`~botocreds._cache.CacheUnavailable` if Redis cannot be used.
        """
        name = self._entry_name(key)
        if not isinstance(entry, bytes):
            raise TypeError(f"entry must be bytes, got {type(entry).__name__}")
        if not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        ttl_ms = math.floor(ttl * 1000)
        if ttl_ms < 1:
            return
        payload = entry if self._fernet is None else self._seal(key, entry)
        if len(payload) > MAX_ENTRY_BYTES:
            logger.debug(
                "botocreds: %s: an entry of %d bytes is over the %d-byte limit: not stored",
                self.name,
                len(payload),
                MAX_ENTRY_BYTES,
            )
            return
        try:
            self._client.set(name, payload, px=ttl_ms)
        except self._errors as error:
            raise self._unavailable("SET", error) from error

    @contextmanager
    def lock(self, key: str, *, lease: float, wait: float) -> Iterator[bool]:
        """Fleet-wide single-flight for ``key``: yields whether the lock was acquired.

        Tries ``SET prefix+"lock:"+key token NX PX lease`` until it succeeds or
        ``wait`` seconds have passed, sleeping briefly between attempts. A
        holder that dies (or hangs) stops holding after ``lease`` seconds. On
        exit the lock is deleted only if it still holds this holder's random
        token (a compare-and-delete script), so a holder whose lease ran out
        never deletes the lock another process has taken since. A failure to
        release is logged and ignored: the lease frees the lock anyway.

        Raises :class:`~botocreds._cache.CacheUnavailable` if Redis cannot be
        used while acquiring.
        """
        name = self._prefix + "lock:" + _check_key(key)
        for label, value in (("lease", lease), ("wait", wait)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{label} must be a finite number of seconds >= 0, got {value!r}")
        if lease <= 0:
            raise ValueError(f"lease must be positive, got {lease!r}")
        token = secrets.token_hex(16)
        lease_ms = max(1, math.ceil(lease * 1000))
        deadline = time.monotonic() + wait
        pause = _POLL
        acquired = False
        try:
            while True:
                # A SET NX resent after a timed-out reply finds our own token:
                # that is the lock, taken by the first attempt.
                if self._client.set(name, token, nx=True, px=lease_ms) or _is_ours(
                    self._client.get(name), token
                ):
                    acquired = True
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, pause * (0.5 + random.random())))
                pause = min(pause * 1.5, _POLL_MAX)
        except self._errors as error:
            raise self._unavailable("SET NX", error) from error
        try:
            yield acquired
        finally:
            if acquired:
                self._unlock(name, token)

    def _unlock(self, name: str, token: str) -> None:
        try:
            deleted = self._release(keys=[name], args=[token])
        except self._errors as error:
            logger.debug(
                "botocreds: %s: could not release a lock (%s); its lease will free it",
                self.name,
                _error_text(error),
            )
            return
        if not deleted:
            logger.debug(
                "botocreds: %s: a lock's lease ran out before its release; "
                "another holder's lock was left alone",
                self.name,
            )

    def _entry_name(self, key: str) -> str:
        return self._prefix + _check_key(key)

    def _unavailable(self, command: str, error: BaseException) -> CacheUnavailable:
        return CacheUnavailable(f"{command} failed: {_error_text(error)}")

    def _seal(self, key: str, entry: bytes) -> bytes:
        assert self._fernet is not None
        return self._fernet.encrypt(_bind(key) + entry)

    def _open(self, key: str, token: bytes) -> bytes | None:
        from cryptography.fernet import InvalidToken

        assert self._fernet is not None
        try:
            plain = self._fernet.decrypt(token)
        except (InvalidToken, ValueError, TypeError):
            return None
        header = _bind(key)
        if not plain.startswith(header):
            return None  # authentic, but written under another Redis key
        return plain[len(header) :]


def _entry_bytes(value: object) -> bytes | None:
    """The entry in a read reply, or ``None`` if the reply is not one: too large, not a string.

    A client with ``decode_responses=True`` answers ``str``; any other type (the
    script's integers, or whatever a substituted client returns) is not an entry.
    """
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if not isinstance(value, bytes) or len(value) > MAX_ENTRY_BYTES:
        return None
    return value


def _reply_problem(value: object) -> str:
    """Why a read reply is not an entry, for a report: never its content."""
    limit = f"over the {MAX_ENTRY_BYTES}-byte limit"
    if isinstance(value, int) and not isinstance(value, bool):
        return "not a string" if value < 0 else f"{value} bytes, {limit}"
    if isinstance(value, (bytes, str)):
        return f"{len(value)} bytes, {limit}"
    return f"an unexpected reply (a {type(value).__name__})"


def _bind(key: str) -> bytes:
    """The header that ties an encrypted entry to its key (Fernet has no associated data)."""
    raw = key.encode()
    return b"%d:" % len(raw) + raw


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"a cache key must be a non-empty string, got {key!r}")
    return key


def _check_keys(key: object) -> list[bytes]:
    """The Fernet keys in ``key=`` (one key or a sequence of them), checked."""
    if key is None:
        return []
    items: list[object]
    if isinstance(key, (str, bytes)):
        items = [key]
    elif isinstance(key, Sequence):
        items = list(key)
        if not items:
            raise ValueError("key= must not be an empty sequence; pass None for no encryption")
    else:
        raise TypeError(
            "key must be a Fernet key (str or bytes) or a sequence of them, "
            f"got {type(key).__name__}"
        )
    checked = []
    for item in items:
        if not isinstance(item, (str, bytes)):
            raise TypeError(f"each Fernet key must be str or bytes, got {type(item).__name__}")
        checked.append(fernet_key(item))
    return checked


def _make_fernet(keys: list[bytes]) -> MultiFernet:
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError as error:
        raise ImportError(
            f"botocreds.RedisCache(key=...) needs cryptography: {_INSTALL_HINT}"
        ) from error
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as error:
        raise ValueError("key must be a Fernet key: 32 url-safe base64-encoded bytes") from error


def _describe(client: redis.Redis) -> str:
    """Where ``client`` points, without credentials: ``redis://host:port/db`` or ``unix://path``."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return type(client).__name__
    db = kwargs.get("db", 0)
    path = kwargs.get("path")
    if path:
        return f"unix://{path}?db={db}"
    host = str(kwargs.get("host", "localhost"))
    if ":" in host:
        host = f"[{host}]"
    connection_class = getattr(pool, "connection_class", None)
    tls = getattr(connection_class, "__name__", "").startswith("SSL")
    scheme = "rediss" if tls else "redis"
    return f"{scheme}://{host}:{kwargs.get('port', 6379)}/{db}"


def _error_text(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _is_ours(value: object, token: str) -> bool:
    """Whether a lock's value is ``token`` (clients may return bytes or str)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value == token
