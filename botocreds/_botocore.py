"""Every touch of a private botocore or boto3 attribute, in one place.

botocore offers no public way to swap a client's credentials, so botocreds
reaches into a few private attributes. Each access is a small function here,
and ``tests/test_botocore_seams.py`` (``tests_aio/test_aiobotocore_seams.py``
for aiobotocore) checks every one against the installed release, so an
upgrade that moves something fails loudly in the test suite instead of
quietly in production.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, cast

import botocore.session
from botocore.client import BaseClient
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

from ._credentials import SnapshotCredentials

#: The endpoint-rules builtin that botocore binds to the *original* credentials
#: object when it builds a client (``botocore/args.py``).
ACCOUNT_ID_BUILTIN = "AWS::Auth::AccountId"


def is_client(value: object) -> bool:
    """Whether ``value`` is a botocore client (boto3 and aiobotocore clients are too)."""
    return isinstance(value, BaseClient)


# aiobotocore is optional. Its classes are looked up in sys.modules rather than
# imported: an object can only be an aiobotocore one if aiobotocore is loaded,
# and a program that never imports it never pays for importing it here.
def _aiobotocore_class(module: str, name: str) -> type | None:
    loaded = sys.modules.get(f"aiobotocore.{module}")
    found = getattr(loaded, name, None)
    return found if isinstance(found, type) else None


def is_aio_client(value: object) -> bool:
    """Whether ``value`` is an aiobotocore client (aioboto3's clients are too)."""
    cls = _aiobotocore_class("client", "AioBaseClient")
    return cls is not None and isinstance(value, cls)


def is_client_creator(value: object) -> bool:
    """Whether ``value`` is what aiobotocore's ``create_client()`` returns before ``async with``."""
    cls = _aiobotocore_class("session", "ClientCreatorContext")
    return cls is not None and isinstance(value, cls)


def is_aio_credentials(value: object) -> bool:
    """Whether ``value`` is an aiobotocore credentials object (static, refreshable or deferred)."""
    static = _aiobotocore_class("credentials", "AioCredentials")
    refreshable = _aiobotocore_class("credentials", "AioRefreshableCredentials")
    return any(cls is not None and isinstance(value, cls) for cls in (static, refreshable))


def aio_session_of(session: object) -> Any | None:
    """The ``AioSession`` behind an aiobotocore or aioboto3 session; ``None`` for anything else.

    aioboto3's ``Session`` is a ``boto3.Session`` subclass holding an
    ``AioSession`` where boto3 holds a botocore one (``_session``).
    """
    cls = _aiobotocore_class("session", "AioSession")
    if cls is None:
        return None
    if isinstance(session, cls):
        return session
    inner = getattr(session, "_session", None) if _is_boto3_session(session) else None
    return inner if isinstance(inner, cls) else None


def is_aio_session(value: object) -> bool:
    """Whether ``value`` is an aiobotocore ``AioSession`` or an aioboto3 ``Session``."""
    return aio_session_of(value) is not None


def _is_boto3_session(value: object) -> bool:
    # Only a loaded boto3 can have made a boto3 session: look it up, never import it.
    cls = getattr(sys.modules.get("boto3.session"), "Session", None)
    return isinstance(cls, type) and isinstance(value, cls)


def client_credentials(client: BaseClient) -> Credentials | None:
    """The credentials object a client signs with.

    ``RequestSigner.get_auth_instance`` reads ``_credentials`` once per signing,
    presigned URLs and retries included.
    """
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    credentials: Credentials | None = signer._credentials
    return credentials


class _Refresher(Protocol):
    """A botocreds refresher, as far as undoing a swap needs one."""

    @property
    def credentials(self) -> SnapshotCredentials: ...


@dataclass(frozen=True)
class ClientBinding:
    """What a client signed with before a swap, so the swap can be undone.

    ``credentials`` and ``account_id_builtin`` are what the client signed with
    before botocreds first swapped its credentials: held strongly, as they may
    be the only reference to them. When the swap replaced another botocreds
    refresher's credentials, that refresher is held only weakly, in
    ``replaced``: a client attached to one new refresher after another would
    otherwise keep every earlier refresher alive through a chain of bindings.
    """

    credentials: Credentials | None
    account_id_builtin: Callable[[], Any] | None
    replaced: weakref.ref[_Refresher] | None = None

    def target(self) -> tuple[Credentials | None, Callable[[], Any] | None]:
        """What undoing the swap puts back: credentials and account-id builtin.

        The replaced refresher's current credentials while that refresher lives,
        else what the client signed with before botocreds.
        """
        refresher = None if self.replaced is None else self.replaced()
        if refresher is None:
            return self.credentials, self.account_id_builtin
        credentials = refresher.credentials
        return credentials, credentials._account_id_builtin()


# What each swapped client signed with before botocreds first swapped it, so
# that undoing a later swap can go back there once the refresher it replaced
# is gone. Weak keys: an entry lives as long as its client.
_originals: weakref.WeakKeyDictionary[BaseClient, ClientBinding] = weakref.WeakKeyDictionary()


def _builtins(client: BaseClient) -> dict[str, Any] | None:
    resolver = getattr(client, "_ruleset_resolver", None)
    builtins: dict[str, Any] | None = getattr(resolver, "_builtins", None)
    return builtins


def bind_client(
    client: BaseClient, credentials: Credentials, account_id: Callable[[], Any]
) -> ClientBinding:
    """Make ``client`` sign with ``credentials``; return what it used before.

    Two references are swapped: the request signer's credentials, and the
    ``AWS::Auth::AccountId`` endpoint-rules builtin, a closure over the original
    object's ``account_id`` that botocore evaluates on every request (aiobotocore
    binds the original's ``get_account_id`` coroutine method instead). Left
    alone, either would run the original's own refresh on request paths, so it
    is replaced by ``account_id``. Each is a single reference assignment, so a
    concurrent request sees either the old or the new object, never a mix.

    Binding a client to the credentials it already signs with changes nothing
    and returns a binding whose ``credentials`` are those very credentials.
    """
    builtins = _builtins(client)
    current = client_credentials(client)
    before = ClientBinding(
        credentials=current,
        account_id_builtin=None if builtins is None else builtins.get(ACCOUNT_ID_BUILTIN),
    )
    if current is credentials:
        return before
    previous = before
    if isinstance(current, SnapshotCredentials):
        # Replacing another refresher's credentials: hold that refresher weakly,
        # and what the client had before botocreds strongly. A client made with
        # botocreds credentials (from a wrapped session) had those to begin with.
        replaced = cast(_Refresher, current._owner)
        original = _originals.setdefault(client, before)
        previous = replace(original, replaced=weakref.ref(replaced))
    else:
        _originals[client] = before
    if builtins is not None and ACCOUNT_ID_BUILTIN in builtins:
        builtins[ACCOUNT_ID_BUILTIN] = account_id
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    signer._credentials = credentials
    return previous


def restore_client(client: BaseClient, binding: ClientBinding) -> None:
    """Undo :func:`bind_client`: see :meth:`ClientBinding.target` for what is put back."""
    credentials, account_id_builtin = binding.target()
    builtins = _builtins(client)
    if builtins is not None and account_id_builtin is not None:
        builtins[ACCOUNT_ID_BUILTIN] = account_id_builtin
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    signer._credentials = credentials


def botocore_session_of(session: object) -> botocore.session.Session | None:
    """The botocore session behind a boto3 or botocore session; ``None`` for anything else."""
    if is_aio_session(session):
        return None  # an aiobotocore session: see aio_session_of()
    if isinstance(session, botocore.session.Session):
        return session
    if _is_boto3_session(session):
        inner: botocore.session.Session = session._session  # type: ignore[attr-defined]
        return inner
    return None


def refresh_function(credentials: RefreshableCredentials) -> Callable[[], Mapping[str, Any]]:
    """The fetch function a ``RefreshableCredentials`` refreshes itself with.

    Calling it fetches a new mapping (``access_key``, ``secret_key``, ``token``,
    ``expiry_time``, maybe ``account_id``) without touching the object's own
    state or lock.
    """
    state: Any = credentials
    fetch: Callable[[], Mapping[str, Any]] = state._refresh_using
    return fetch


def peek(credentials: RefreshableCredentials) -> tuple[ReadOnlyCredentials, datetime] | None:
    """A ``RefreshableCredentials``' current values and expiry, without refreshing.

    Its public accessors run botocore's refresh when less than 15 minutes are
    left, which a freshly fetched short-lived set always is. Returns ``None`` for
    a ``DeferredRefreshableCredentials`` that has not fetched yet.
    """
    state: Any = credentials
    frozen: ReadOnlyCredentials | None = state._frozen_credentials
    expiry: datetime | None = state._expiry_time
    if frozen is None or expiry is None:
        return None
    return frozen, expiry


# -- which source a credentials object refreshes from -------------------------------
@dataclass(frozen=True)
class SourceIdentity:
    """Which source a set of botocore credentials refreshes from, never a secret.

    Two credentials objects with equal identities get their sets from the same
    place (the same profile's ``credential_process`` command, the same role
    assumed with the same source credentials, the same container endpoint…),
    so one refresher, and one shared-cache entry, can serve both. ``kind`` is
    botocore's provider method; ``details`` are plain strings (a value that
    could be sensitive, such as an external ID or a container token, is only
    there as a hash). The repr shows the kind alone.
    """

    kind: str
    details: tuple[str, ...] = ()

    def key(self) -> str:
        """A bounded, filename-safe string naming this source in a shared store."""
        digest = hashlib.sha256(json.dumps([self.kind, *self.details]).encode()).hexdigest()
        safe_kind = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.kind)[:40]
        return f"{safe_kind}-{digest[:32]}"

    def __repr__(self) -> str:
        return f"SourceIdentity({self.kind!r})"


def _digest(value: object) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()[:32]


def _free_variables(function: object) -> dict[str, Any]:
    """The variables a closure captured, by name (``{}`` for anything else).

    botocore's process and container providers refresh through closures
    (``lambda: self._retrieve_credentials_using(credential_process)``, and
    ``fetch_creds`` over ``full_uri``): what they refresh from lives only there.
    """
    code = getattr(function, "__code__", None)
    cells = getattr(function, "__closure__", None) or ()
    names = getattr(code, "co_freevars", ())
    found: dict[str, Any] = {}
    for name, cell in zip(names, cells, strict=False):
        try:
            found[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return found


def _refresh_target(credentials: object) -> Any:
    """The function a refreshable credentials object refreshes with, MFA wrapper removed."""
    fetch = getattr(credentials, "_refresh_using", None)
    # create_mfa_serial_refresher() wraps the fetcher in a one-shot _Refresher:
    # botocore refreshes with that object, aiobotocore with its bound ``call``.
    for wrapper in (fetch, getattr(fetch, "__self__", None)):
        inner = getattr(wrapper, "_refresh", None)
        if type(wrapper).__name__ == "_Refresher" and callable(inner):
            return inner
    return fetch


def _is_refreshable(credentials: object) -> bool:
    refreshable = _aiobotocore_class("credentials", "AioRefreshableCredentials")
    return isinstance(credentials, RefreshableCredentials) or (
        refreshable is not None and isinstance(credentials, refreshable)
    )


def source_identity(credentials: object) -> SourceIdentity | None:
    """Which source botocore or aiobotocore refreshable ``credentials`` come from.

    Read from the provider objects botocore left behind (the fetcher the
    credentials refresh with, and its configuration): a ``credential_process``
    command and its profile, a role (ARN, source credentials, session name,
    external ID, MFA serial, duration, policy), web identity (role and token
    file), a container endpoint and its token, instance metadata, SSO (start
    URL, account, role) or ``aws login``. ``None`` when botocreds cannot tell:
    those credentials are shared only with clients of the very same object.
    """
    if not _is_refreshable(credentials):
        return None
    method = getattr(credentials, "method", None)
    fetch = _refresh_target(credentials)
    owner = getattr(fetch, "__self__", None)
    captured = _free_variables(fetch)
    if method == "custom-process":
        command = captured.get("credential_process")
        profile = getattr(captured.get("self"), "_profile_name", None)
        if isinstance(command, str):
            return SourceIdentity(method, (str(profile), command))
        return None
    if method == "container-role":
        return _container_identity(captured)
    if method == "iam-role":
        base_url = getattr(owner, "_base_url", None)
        return SourceIdentity(method, (str(base_url),)) if base_url is not None else None
    if method in ("assume-role", "assume-role-with-web-identity"):
        return _role_identity(method, owner)
    if method == "sso":
        details = [getattr(owner, name, None) for name in _SSO_FIELDS]
        if details[0] is None:
            return None
        return SourceIdentity(method, (*(str(value) for value in details), _caller()))
    if method == "login":
        session_name = getattr(owner, "_session_name", None)
        return SourceIdentity(method, (str(session_name), _caller())) if session_name else None
    return None


def _caller() -> str:
    """Who an SSO or ``aws login`` set belongs to, as far as this host can tell.

    Those sets belong to whoever logged in (their token sits in that user's
    cache), which no botocore setting names: two people with the same start
    URL, account and role get different principals. The local user and host
    stand in for them, so two callers never share a refresher or an entry.
    """
    import socket

    return f"caller=uid:{os.geteuid()}@{socket.gethostname()}"


_SSO_FIELDS = ("_start_url", "_account_id", "_role_name", "_sso_session_name", "_sso_region")
# The container provider's environment variables (botocore's ContainerProvider).
_CONTAINER_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
_CONTAINER_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"


def _container_identity(captured: Mapping[str, Any]) -> SourceIdentity | None:
    full_uri = captured.get("full_uri")
    if not isinstance(full_uri, str):
        return None
    environ: Mapping[str, str] = getattr(captured.get("self"), "_environ", None) or {}
    token_file = environ.get(_CONTAINER_TOKEN_FILE)
    token = environ.get(_CONTAINER_TOKEN)
    if token_file is not None:
        authorization = f"file:{token_file}"
    elif token is not None:
        authorization = f"token:{_digest(token)}"
    else:
        authorization = "none"
    return SourceIdentity("container-role", (full_uri, authorization))


# The AssumeRole arguments that make two roles' credentials differ; a default
# (generated) session name does not. Values that could be sensitive are hashed.
_ROLE_ARGUMENTS = ("RoleArn", "RoleSessionName", "SerialNumber", "DurationSeconds")
_HASHED_ROLE_ARGUMENTS = ("ExternalId", "Policy", "PolicyArns", "Tags", "TransitiveTagKeys")


def _role_identity(method: str, fetcher: object) -> SourceIdentity | None:
    arguments = getattr(fetcher, "_assume_kwargs", None)
    if not isinstance(arguments, Mapping) or not isinstance(arguments.get("RoleArn"), str):
        return None
    details: list[str] = []
    for name in _ROLE_ARGUMENTS:
        if name == "RoleSessionName" and getattr(fetcher, "_using_default_session_name", False):
            details.append(f"{name}=<default>")
        elif name in arguments:
            details.append(f"{name}={arguments[name]}")
    details += [f"{n}#{_digest(arguments[n])}" for n in _HASHED_ROLE_ARGUMENTS if n in arguments]
    if method == "assume-role-with-web-identity":
        loader = getattr(fetcher, "_web_identity_token_loader", None)
        token_file = getattr(loader, "_web_identity_token_path", None)
        if not isinstance(token_file, str):
            return None
        details.append(f"token_file={token_file}")
    else:
        source = _source_credentials_identity(getattr(fetcher, "_source_credentials", None))
        if source is None:
            return None
        details.append(f"source={source.kind}:{source.key()}")
    return SourceIdentity(method, tuple(details))


def _source_credentials_identity(source: object) -> SourceIdentity | None:
    """The identity of the credentials a role is assumed with."""
    if isinstance(source, SnapshotCredentials):
        return None  # botocreds' own: known to their refresher, not to botocore
    if _is_refreshable(source):
        return source_identity(source)
    if isinstance(source, Credentials):
        # Static keys: the access key ID names them; it is not a secret.
        return SourceIdentity("static", (str(source.access_key),))
    return None


# -- sessions: what they resolved, and what decides their resolution ----------------
def resolved_credentials(session: object) -> Any:
    """What a botocore or aiobotocore session resolved already (``None``: nothing yet).

    ``Session.get_credentials()`` caches its answer in ``_credentials``;
    ``set_credentials()`` and explicit keys set it too.
    """
    return getattr(session, "_credentials", None)


def serve_resolved(session: object, credentials: object) -> None:
    """Make ``session.get_credentials()`` answer ``credentials`` from now on."""
    session._credentials = credentials  # type: ignore[attr-defined]


def resolution_key(session: object) -> str | None:
    """A digest of everything that decides how ``session`` will resolve its credentials.

    Two sessions with equal keys run botocore's default chain over the same
    profile, configuration, files and environment, so they resolve to the same
    source: one resolution can serve both. ``None`` when that cannot be
    promised: a session that resolved already, or whose credential resolver
    was built or replaced (``register_component``) before its first
    resolution. The region is left out on purpose: it only picks the STS
    endpoint a role is assumed through, not the credentials. The digest hides
    every value it covers (the environment's keys included).
    """
    if resolved_credentials(session) is not None:
        return None
    deferred = getattr(getattr(session, "_components", None), "_deferred", None)
    if not isinstance(deferred, dict) or "credential_provider" not in deferred:
        return None
    try:
        profile = session.profile  # type: ignore[attr-defined]
        scoped = session.get_scoped_config()  # type: ignore[attr-defined]
        instance_vars = {
            name: value
            for name, value in session.instance_variables().items()  # type: ignore[attr-defined]
            if name not in _NOT_DECIDING
        }
        paths = [
            session.get_config_variable(name)  # type: ignore[attr-defined]
            for name in ("config_file", "credentials_file")
        ]
    except Exception:
        return None  # e.g. a missing profile: botocore's own resolution will say so
    files = []
    for path in paths:
        try:
            status = os.stat(os.path.expanduser(str(path)))
            files.append([str(path), status.st_ino, status.st_size, status.st_mtime_ns])
        except OSError:
            files.append([str(path), None])
    environment = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    payload = [type(session).__qualname__, profile, scoped, instance_vars, files, environment]
    encoded = json.dumps(payload, sort_keys=True, default=repr).encode()
    return hashlib.sha256(encoded).hexdigest()


# Session settings that do not change which credentials a session resolves:
# the profile is in the key already (however it was chosen), the region only
# picks an STS endpoint.
_NOT_DECIDING = frozenset({"profile", "region"})


@dataclass(frozen=True)
class SessionHooks:
    """The methods botocreds wraps, at class level, to cover every session of a class."""

    owner: type
    get_credentials: str
    create_client: str
    is_async: bool


def botocore_session_hooks() -> SessionHooks:
    """botocore's ``Session``: ``get_credentials()`` and ``create_client()``."""
    return SessionHooks(botocore.session.Session, "get_credentials", "create_client", False)


def aiobotocore_session_hooks(module: Any) -> SessionHooks:
    """aiobotocore's ``AioSession``: the ``get_credentials`` and ``_create_client`` coroutines.

    Its ``create_client()`` returns a context manager around ``_create_client()``.
    """
    return SessionHooks(module.AioSession, "get_credentials", "_create_client", True)
