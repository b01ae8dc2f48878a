"""``install()``, ``uninstall()`` and the client plugin: every session in the process covered.

botocreds wraps, at class level, the two methods every session goes through:

* ``get_credentials()``: the first time a session resolves, botocreds runs
  botocore's chain once for every session that would resolve the same way
  (same profile, configuration, files and environment:
  ``_botocore.resolution_key``), so twenty sessions created at once make one
  fetch, not twenty (botocore#3364). The resolved set is adopted, not fetched
  again, by the one refresher of its source, and the session answers that
  refresher's credentials from then on;
* ``create_client()``: a client that signs with them holds a use of the
  refresher while it lives, and gets the reactive retry.

Nothing else changes: a session with explicit keys, or static credentials,
is left as botocore made it. ``uninstall()`` puts back what each covered
session had resolved, and the original methods; clients already covered keep
working.

The plugin (``botocreds.plugin``) and the AWS CLI entry (``botocreds.awscli``)
install the same wrappers from the environment's settings, in a mode that
never breaks client creation: any error is logged once, at WARNING, and the
client or session is left as botocore made it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from . import _botocore
from ._forksafe import renew_after_fork
from ._sharing import SingleFlight

if TYPE_CHECKING:
    from ._attach import _Options
    from ._cache import SharedCache
    from ._config import Settings
    from ._credentials import SnapshotCredentials
    from ._events import Reporter
    from ._policy import RefreshPolicy
    from ._runtime import RefresherRuntime

logger = logging.getLogger("botocreds")


@dataclass(frozen=True)
class _Installation:
    """What ``install()`` (or the plugin) was given; configuration fills the rest per session."""

    policy: RefreshPolicy | None
    reporter: Reporter | None
    cache: SharedCache | None
    #: ``install()``: a source that cannot produce a valid set raises
    #: ``CredentialsUnavailable``. The plugin: it logs once and steps aside.
    strict: bool


# The installation in force (None: not installed). Read without the lock by the
# wrappers (one reference); changed under it.
_current: _Installation | None = None
# Set by uninstall(): the plugin stays out until install() is called again.
_stepped_aside = False
_lock = threading.RLock()
# The original class attributes the wrappers replaced, to put back.
_originals: dict[tuple[type, str], Any] = {}
_wrappers: dict[tuple[type, str], Any] = {}
# Covered sessions, and what each had resolved itself (None: it shared another's).
_covered: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
# Resolutions, by resolution key and options: what the first session resolved.
_resolved: dict[tuple[str, _Options], weakref.ref[Any]] = {}
_flights: SingleFlight[tuple[str, _Options], Any] = SingleFlight()
_resolving = threading.local()
_warned: set[str] = set()
renew_after_fork(sys.modules[__name__], "_lock", threading.RLock)


# -- public ---------------------------------------------------------------------------
def install(
    policy: RefreshPolicy | None = None,
    *,
    reporter: Reporter | None = None,
    cache: SharedCache | None = None,
) -> None:
    """Cover every botocore, boto3 and aiobotocore session created from now on.

    Every client made from them, boto3's default session and one set up later
    by ``boto3.setup_default_session()`` included, signs with credentials kept
    fresh in the background, by one refresher per source in the process.
    Sessions already made are covered from their next client on. Works at
    class level, for code and for botocore or aiobotocore releases without
    the client-plugin hook.

    ``policy``, ``reporter`` and ``cache`` apply to every session; left as
    ``None``, the policy and the shared tier come from the configuration
    (``BOTOCREDS_*`` environment variables, then ``botocreds_*`` settings in
    each session's profile). Idempotent: installing again replaces the
    arguments for sessions covered from then on. Raises ``TypeError`` or
    ``ValueError`` (naming the setting) for bad arguments or configuration,
    before anything is installed; a session whose source cannot produce a
    valid set raises :class:`CredentialsUnavailable` when it resolves.
    """
    from ._attach import _check_policy
    from ._cache import check_cache
    from ._config import settings_from
    from ._events import check_reporter

    if policy is not None:
        _check_policy(policy)
    check_reporter(reporter)
    check_cache(cache)
    settings_from(os.environ, {}, base_policy=policy, cache=cache)  # the environment, checked now
    _activate(_Installation(policy, reporter, cache, strict=True))


def uninstall() -> None:
    """Stop covering new clients; clients already covered keep working. Idempotent.

    Each covered session gets back what it had resolved itself (a session that
    shared another's resolution resolves again on its next client), and the
    plugin stays out until :func:`install` is called again.
    """
    global _current, _stepped_aside
    with _lock:
        _current = None
        _stepped_aside = True
        for session, original in list(_covered.items()):
            if _is_ours(_botocore.resolved_credentials(session)):
                _botocore.serve_resolved(session, original)
        _covered.clear()
        _resolved.clear()
        for (owner, name), wrapper in list(_wrappers.items()):
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, _originals[owner, name])
            del _wrappers[owner, name]
            del _originals[owner, name]


def installed() -> bool:
    """Whether :func:`install` or the plugin covers new sessions now."""
    return _current is not None


# -- the plugin's entry points -----------------------------------------------------------
def cover_client(client: object) -> None:
    """What ``botocreds.plugin.initialize_client_plugin`` runs. Never raises.

    Installs the wrappers from the environment's settings on first use, so
    every later session is covered as it resolves; then covers ``client``
    itself, whose session resolved before botocreds was loaded.
    """
    try:
        installation = activate_from_environment()
        if installation is not None:
            _cover_existing_client(client, installation)
    except Exception as error:
        _warn_once("cover", f"botocreds left a client as botocore made it: {_describe(error)}")


def activate_from_environment() -> _Installation | None:
    """Install in the plugin's mode from the environment, unless installed or stepped aside.

    Returns the installation in force (``None``: stepped aside, or the
    environment's settings are bad, which is logged once at WARNING naming the
    setting). Never raises.
    """
    installation = _current
    if installation is not None or _stepped_aside:
        return installation
    from ._config import ConfigError, settings_from

    try:
        settings_from(os.environ, {})
    except ConfigError as error:
        _warn_once(f"setting:{error.setting}", f"botocreds is not covering clients: {error}")
        return None
    with _lock:
        if _current is None and not _stepped_aside:
            _activate(_Installation(None, None, None, strict=False), replace=False)
        return _current


# -- installing ------------------------------------------------------------------------------
def _activate(installation: _Installation, *, replace: bool = True) -> None:
    global _current, _stepped_aside
    with _lock:
        if replace or _current is None:
            _current = installation
        _stepped_aside = False
        _wrap_class(_botocore.botocore_session_hooks())
        if "aiobotocore.session" in sys.modules:
            _wrap_aiobotocore(sys.modules["aiobotocore.session"])
        else:
            _watch_for_aiobotocore()


_watching = False


def _watch_for_aiobotocore() -> None:
    """Wrap aiobotocore's session class when (if ever) it is imported. Lock held."""
    global _watching
    if _watching:
        return
    import wrapt

    _watching = True
    wrapt.register_post_import_hook(_on_aiobotocore_import, "aiobotocore.session")


def _on_aiobotocore_import(module: Any) -> None:
    try:
        with _lock:
            if _current is not None:
                _wrap_aiobotocore(module)
    except Exception as error:  # an import hook must not break the import
        _warn_once("aiobotocore", f"botocreds cannot cover aiobotocore: {_describe(error)}")


def _wrap_aiobotocore(module: Any) -> None:
    _wrap_class(_botocore.aiobotocore_session_hooks(module))


def _wrap_class(hooks: _botocore.SessionHooks) -> None:
    """Wrap one session class's two methods, once. Lock held."""
    import wrapt

    if hooks.is_async:
        wrappers: dict[str, Callable[..., Any]] = {
            hooks.get_credentials: _aio_get_credentials,
            hooks.create_client: _aio_create_client,
        }
    else:
        wrappers = {hooks.get_credentials: _get_credentials, hooks.create_client: _create_client}
    for name, wrapper in wrappers.items():
        slot = (hooks.owner, name)
        if slot in _wrappers and hooks.owner.__dict__.get(name) is _wrappers[slot]:
            continue
        _originals[slot] = hooks.owner.__dict__[name]
        wrapt.wrap_function_wrapper(hooks.owner, name, wrapper)
        _wrappers[slot] = hooks.owner.__dict__[name]


# -- the wrappers ------------------------------------------------------------------------------
def _get_credentials(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    installation = _current
    if installation is None or args or kwargs or getattr(_resolving, "active", False):
        return wrapped(*args, **kwargs)
    current = _botocore.resolved_credentials(instance)
    if current is not None and not _covers(current):
        return current  # static keys, explicit keys, or botocreds' own already
    try:
        options = _options_for(instance, installation)
        return _cover_session(instance, current, wrapped, options)
    except _BotocoreSaid as said:
        raise said.error.with_traceback(said.error.__traceback__) from None
    except Exception as error:
        return _step_aside(error, installation, instance, wrapped)


async def _aio_get_credentials(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    import asyncio

    installation = _current
    if installation is None or args or kwargs:
        return await wrapped(*args, **kwargs)
    current = _botocore.resolved_credentials(instance)
    if current is not None and not _covers(current):
        return current
    try:
        options = _options_for(instance, installation)
        key = None if current is not None else _botocore.resolution_key(instance)
    except Exception as error:
        return _step_aside(error, installation, instance, None) or await wrapped()
    if key is not None:
        # One resolution for every session resolving the same way at once: it
        # runs on botocreds' loop, and the waiting on a thread, never this loop.
        try:
            return await asyncio.to_thread(_resolve_on_loop_once, instance, wrapped, options, key)
        except _BotocoreSaid as said:
            raise said.error.with_traceback(said.error.__traceback__) from None
        except Exception as error:
            return _step_aside(error, installation, instance, None) or await wrapped()
    if current is None:
        current = await wrapped()  # aiobotocore's resolution, on the caller's loop
    if current is None or not _covers(current):
        return current
    try:
        # A first mint (a deferred role) blocks its thread: never the caller's loop.
        return await asyncio.to_thread(_take, instance, current, options, aio=True)
    except Exception as error:
        return _step_aside(error, installation, instance, None)


def _create_client(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    client = wrapped(*args, **kwargs)
    _note_client(client)
    return client


async def _aio_create_client(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    client = await wrapped(*args, **kwargs)
    _note_client(client)
    return client


def _note_client(client: Any) -> None:
    """A new client that signs with botocreds credentials holds a use of their refresher."""
    if _current is None:
        return
    try:
        credentials = _botocore.client_credentials(client)
        if not _is_ours(credentials):
            return
        from ._attach import _release_later, _retain
        from ._reactive import install_reactive_retry

        owner: RefresherRuntime = credentials._owner  # type: ignore[assignment]
        _retain(owner)
        use = weakref.finalize(client, _release_later, weakref.ref(owner))
        use.atexit = False
        install_reactive_retry(client)
    except Exception as error:
        _warn_once("client", f"botocreds could not finish covering a client: {_describe(error)}")


# -- covering a session ---------------------------------------------------------------------------
class _BotocoreSaid(Exception):
    """botocore's own resolution raised ``error``: the caller sees it as plain botocore would."""

    def __init__(self, error: BaseException) -> None:
        super().__init__("botocore's resolution failed")
        self.error = error


@contextmanager
def _resolving_alone() -> Iterator[None]:
    # Resolution can create clients and sessions (a role's STS client): those
    # resolve as plain botocore would, and never wait for this resolution.
    _resolving.active = True
    try:
        yield
    finally:
        _resolving.active = False


def _cover_session(
    session: Any, current: Any, get_credentials: Callable[[], Any], options: _Options
) -> Any:
    """The credentials ``session`` should answer from now on, covered where they refresh."""
    if current is not None:  # resolved before botocreds was installed
        return _take(session, current, options, aio=False)

    def resolve() -> Any:
        with _resolving_alone():
            try:
                return get_credentials()
            except Exception as error:
                raise _BotocoreSaid(error) from None

    key = _botocore.resolution_key(session)
    if key is None:
        return _take(session, resolve(), options, aio=False)
    return _resolve_once(session, key, options, resolve, aio=False)


def _resolve_on_loop_once(
    session: Any, get_credentials: Callable[[], Any], options: _Options, key: str
) -> Any:
    """:func:`_resolve_once` for an aiobotocore session, from a worker thread."""
    from ._aioloop import run_on_loop

    def resolve() -> Any:
        try:
            return run_on_loop(get_credentials, options.policy.mint_timeout)
        except Exception as error:
            raise _BotocoreSaid(error) from None

    return _resolve_once(session, key, options, resolve, aio=True)


def _resolve_once(
    session: Any, key: str, options: _Options, resolve: Callable[[], Any], *, aio: bool
) -> Any:
    """Resolve ``session``, once for every session with the same key and options.

    The first caller runs botocore's chain and covers what it resolved; the
    others, arriving meanwhile or later, take the same refresher (or the same
    static credentials) without resolving at all.
    """
    flight = (key, options)

    def find() -> Any:
        known = _resolved.get(flight)
        found = None if known is None else known()
        if found is None:
            return None
        if _is_runtime(found):
            from ._attach import _retain

            _retain(found)  # this session's use
        return found

    def build() -> Any:
        taken = _take(session, resolve(), options, aio=aio)
        if taken is not None:
            owner = getattr(taken, "_owner", None)
            shared = owner if _is_runtime(owner) else taken
            _resolved[flight] = weakref.ref(shared)
        return _Built(taken)

    found = _flights.run(flight, find, build)
    if isinstance(found, _Built):
        return found.credentials
    if _is_runtime(found):
        _serve(session, found, original=None)
        return found.credentials
    _botocore.serve_resolved(session, found)  # static credentials another session resolved
    return found


@dataclass(frozen=True)
class _Built:
    """What the session that resolved for everyone answers (not shared with the waiters)."""

    credentials: Any


def _take(session: Any, resolved: Any, options: _Options, *, aio: bool) -> Any:
    """Cover what ``session`` just resolved, if it refreshes; the credentials it answers."""
    if resolved is None or not _covers(resolved):
        return resolved
    refresher = _refresher_for(resolved, options, aio=aio)
    _serve(session, refresher, original=resolved)
    return refresher.credentials


def _refresher_for(credentials: Any, options: _Options, *, aio: bool) -> RefresherRuntime:
    from ._attach import _acquire

    return _acquire(credentials, options, aio=aio)


def _serve(session: Any, refresher: RefresherRuntime, *, original: Any) -> None:
    """Make ``session`` answer ``refresher``'s credentials; it holds one use while it lives."""
    from ._attach import _release_later

    with _lock:
        _botocore.serve_resolved(session, refresher.credentials)
        _covered[session] = original
    use = weakref.finalize(session, _release_later, weakref.ref(refresher))
    use.atexit = False


def _covers(credentials: object) -> bool:
    """Whether botocreds takes these over: credentials that refresh, and not its own."""
    return _botocore._is_refreshable(credentials) and not _is_ours(credentials)


def _options_for(session: Any, installation: _Installation) -> _Options:
    """The refresher options for ``session``: arguments, then environment, then its profile."""
    from ._attach import _Options

    settings = _settings_for(session, installation)
    return _Options(settings.policy, installation.reporter, settings.cache, None)


def _settings_for(session: Any, installation: _Installation) -> Settings:
    from ._config import settings_from

    try:
        profile = session.get_scoped_config()
        name = session.profile
    except Exception:
        profile, name = {}, None
    return settings_from(
        os.environ,
        profile,
        profile_name=name,
        base_policy=installation.policy,
        cache=installation.cache,
    )


def _cover_existing_client(client: Any, installation: _Installation) -> None:
    """Cover a client made before the wrappers were installed (the plugin's first)."""
    from ._attach import attach

    credentials: Any = _botocore.client_credentials(client)
    if credentials is None or not _covers(credentials):
        return
    aio = _botocore.is_aio_client(client)
    import botocore.session

    from ._sources import current_set

    # The client does not know its session, so its profile is the one a new
    # session would use (AWS_PROFILE, or default): the same settings, and so
    # the same refresher, as that session's later clients get.
    settings = _settings_for(botocore.session.Session(), installation)
    if aio and current_set(credentials)(_wall, settings.policy.floor) is None:
        # Its first mint would block the caller's event loop: its session's next
        # client is covered instead, when the session resolves through the wrapper.
        return
    attach(
        client,
        policy=settings.policy,
        reporter=installation.reporter,
        cache=settings.cache,
    )


def _wall() -> float:
    import time

    return time.time()


def _step_aside(
    error: Exception, installation: _Installation, session: Any, get_credentials: Any
) -> Any:
    """An error covering a session: log it once, and answer what botocore resolved.

    Under ``install()``, a source that cannot produce a valid set raises
    :class:`CredentialsUnavailable` instead; nothing else ever breaks client
    creation.
    """
    if installation.strict and _is_unavailable(error):
        raise error
    from ._config import ConfigError

    if isinstance(error, ConfigError):
        _warn_once(f"setting:{error.setting}", f"botocreds left a session uncovered: {error}")
    else:
        _warn_once("session", f"botocreds left a session uncovered: {_describe(error)}")
    resolved = _botocore.resolved_credentials(session)
    if resolved is not None or get_credentials is None:
        return resolved
    return get_credentials()


def _is_unavailable(error: BaseException) -> bool:
    from ._errors import CredentialsUnavailable

    return isinstance(error, CredentialsUnavailable)


def _warn_once(topic: str, message: str) -> None:
    with _lock:
        if topic in _warned:
            return
        _warned.add(topic)
    logger.warning(message)


def _describe(error: BaseException) -> str:
    from ._redact import describe_error

    return describe_error(error)


def _is_ours(credentials: object) -> TypeGuard[SnapshotCredentials]:
    """Whether ``credentials`` are a botocreds refresher's."""
    from ._credentials import SnapshotCredentials

    return isinstance(credentials, SnapshotCredentials)


def _is_runtime(value: object) -> TypeGuard[RefresherRuntime]:
    from ._runtime import RefresherRuntime

    return isinstance(value, RefresherRuntime)
