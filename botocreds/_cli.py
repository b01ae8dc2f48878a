"""The ``botocreds`` command: explain where a process's credentials come from, and watch them.

Usage::

    botocreds inspect [--profile P] [--region R] [--json] [--no-network]
    botocreds watch [--profile P] [--region R] [--json] [--max-events N]
                    [--floor F] [--fraction X] [--min-interval M]

``inspect`` resolves the credential chain as boto3 would and prints the provider
that won, the access key masked to its last 4 characters, the expiry, the
refresh schedule under the default :class:`~botocreds.RefreshPolicy`, the STS
endpoint a client would use, the caller identity (unless ``--no-network``) and
warnings. ``watch`` wraps the session and prints one line per refresh event
until interrupted or until ``--max-events`` events were printed.

Secret keys and session tokens are never printed, not even with ``--json``.

Exit codes:

    0    success
    1    credentials unavailable: none were found, or the source cannot mint them
    2    usage or configuration error: bad arguments, an unknown profile, an
         invalid configuration file or invalid policy knobs
    130  interrupted (Ctrl-C)

Errors are one line on stderr, prefixed ``botocreds: error:``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import IO, Any, NoReturn
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConfigNotFound,
    ConfigParseError,
    InvalidConfigError,
    InvalidRegionError,
    InvalidSTSRegionalEndpointsConfigError,
    PartialCredentialsError,
    ProfileNotFound,
    UnknownCredentialError,
)

from . import _botocore
from ._attach import shutdown, wrap
from ._errors import CredentialsUnavailable
from ._events import RefreshEvent, as_dict, describe
from ._policy import RefreshPolicy
from ._redact import describe_error, mask_access_key, message_is_hidden
from ._snapshot import BadAnswer, check_fields, to_epoch, utc_datetime
from ._version import __version__

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: botocore refreshes credentials with this much or less left on every request.
BOTOCORE_ADVISORY_WINDOW = 15 * 60.0
#: A clock this far from STS's is reported.
SKEW_LIMIT = 60.0
#: The STS endpoint that serves every region from us-east-1.
GLOBAL_STS_HOST = "sts.amazonaws.com"
#: Providers whose credentials without a session token are long-term access keys.
STATIC_METHODS = frozenset({"env", "shared-credentials-file", "config-file"})

EPILOG = """\
exit codes:
  0    success
  1    credentials unavailable: none were found, or the source cannot mint them
  2    usage or configuration error: bad arguments, an unknown profile, an
       invalid configuration file or invalid policy knobs
  130  interrupted (Ctrl-C)

Secret keys and session tokens are never printed; access keys show their
last 4 characters only.
"""

# Configuration mistakes the user has to fix: exit 2, not 1.
_CONFIG_ERRORS: tuple[type[BaseException], ...] = (
    ProfileNotFound,
    ConfigNotFound,
    ConfigParseError,
    InvalidConfigError,
    InvalidRegionError,
    InvalidSTSRegionalEndpointsConfigError,
    PartialCredentialsError,
    UnknownCredentialError,
)


class CommandError(Exception):
    """A failure reported as one line on stderr, with the exit code to return."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, and never exit by themselves."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(EXIT_USAGE, f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The ``botocreds`` argument parser, with its ``inspect`` and ``watch`` subcommands."""
    parser = _Parser(
        prog="botocreds",
        description="Explain where boto3 credentials come from, and watch botocreds refresh them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"botocreds {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    inspect = commands.add_parser(
        "inspect",
        help="resolve the credential chain as boto3 would and explain the result",
        description=(
            "Resolve the credential chain as boto3 would and print the provider that won,\n"
            "the masked access key, the expiry, the refresh schedule under the default\n"
            "policy, the STS endpoint, the caller identity and warnings."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_session_arguments(inspect)
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument(
        "--no-network",
        action="store_true",
        help="do not call sts:GetCallerIdentity (no identity, no clock-skew check)",
    )

    watch = commands.add_parser(
        "watch",
        help="refresh in the background and print one line per event",
        description=(
            "Wrap the session with botocreds and print one line per refresh event, with a\n"
            "UTC timestamp, until interrupted or until --max-events events were printed."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_session_arguments(watch)
    watch.add_argument("--json", action="store_true", help="print one JSON object per line")
    watch.add_argument(
        "--max-events",
        type=_positive_int,
        metavar="N",
        help="exit (with 0) after printing N events",
    )
    knobs = watch.add_argument_group(
        "policy", "RefreshPolicy knobs (defaults: the default policy); for short credentials"
    )
    knobs.add_argument("--floor", type=_seconds, metavar="F", help="RefreshPolicy.floor, seconds")
    knobs.add_argument(
        "--fraction", type=_number, metavar="X", help="RefreshPolicy.fraction, in (0, 1]"
    )
    knobs.add_argument(
        "--min-interval",
        type=_seconds,
        metavar="M",
        help="RefreshPolicy.min_interval, seconds",
    )
    return parser


def _add_session_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", metavar="P", help="the profile to use (default: AWS_PROFILE or 'default')"
    )
    parser.add_argument("--region", metavar="R", help="the region (default: the profile's)")


# -- shared ---------------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Errors whose messages never quote a value of a source's answer: botocreds' own
# checks, a JSON syntax error (a position) and an OS error (a file or a command).
_SAFE_ANSWER_ERRORS: tuple[type[BaseException], ...] = (BadAnswer, json.JSONDecodeError, OSError)


def _describe_answer_error(error: Exception) -> str:
    """One line on why a source's answer could not be read, never quoting the answer.

    Reading an answer can fail anywhere in botocore or the libraries it uses.
    :func:`describe_error` already hides what dateutil and botocore's Version
    check quote; beyond botocreds' checks, JSON syntax errors, OS errors and
    botocore's own errors, an error is named by its type only, since its
    message may quote what it could not read.
    """
    if isinstance(error, (*_SAFE_ANSWER_ERRORS, BotoCoreError)) or message_is_hidden(error):
        return describe_error(error)
    name = type(error).__name__
    return f"{name} while reading the credentials (its message is not shown: it may quote them)"


@contextlib.contextmanager
def _credential_errors(
    action: str, code: int = EXIT_UNAVAILABLE, *, reads_answers: bool = False
) -> Iterator[None]:
    """Turn what resolving or minting credentials may raise into a :class:`CommandError`.

    Anything a credential source raises counts as "cannot mint" (``code``, exit 1
    by default) except configuration mistakes (exit 2). Messages are one line;
    botocore's and botocreds' own never contain secrets. With ``reads_answers``
    (where a source's answer is read), an error is described by
    :func:`_describe_answer_error`, which never quotes the answer.
    """
    try:
        yield
    except CommandError:
        raise
    except _CONFIG_ERRORS as error:
        raise CommandError(EXIT_USAGE, _one_line(error)) from error
    except CredentialsUnavailable as error:
        raise CommandError(EXIT_UNAVAILABLE, _one_line(error)) from error
    except Exception as error:
        reason = _describe_answer_error(error) if reads_answers else describe_error(error)
        raise CommandError(code, f"{action}: {reason}") from error


def _session(profile: str | None, region: str | None) -> boto3.Session:
    with _credential_errors("cannot open the session", EXIT_USAGE):
        return boto3.Session(profile_name=profile, region_name=region)


def _configured_policy(session: boto3.Session) -> tuple[RefreshPolicy, str]:
    """The policy ``install()`` and the plugin would use for ``session``, and its origin."""
    from ._config import ConfigError, settings_from

    try:
        inner = _botocore.botocore_session_of(session)
        scoped = {} if inner is None else inner.get_scoped_config()
        policy = settings_from(os.environ, scoped, profile_name=session.profile_name).policy
    except ConfigError as error:
        raise CommandError(EXIT_USAGE, f"invalid botocreds setting: {error}") from None
    except Exception:
        return RefreshPolicy(), "default policy"  # the session itself reports what is wrong
    if policy == RefreshPolicy():
        return policy, "default policy"
    return policy, "policy from BOTOCREDS_* or botocreds_* settings"


def _source_name(credentials: object) -> str | None:
    identity = _botocore.source_identity(credentials)
    return None if identity is None else identity.key()


def _no_credentials(session: boto3.Session) -> CommandError:
    return CommandError(
        EXIT_UNAVAILABLE,
        f"no credentials found for profile {session.profile_name!r} (looked in the "
        "environment, the shared credentials and config files, SSO, container and "
        "instance metadata)",
    )


def _utc(when: datetime) -> str:
    """``2030-01-02T03:04:05Z``: UTC, whole seconds."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(timezone.utc).isoformat(timespec="seconds")


def _span(seconds: float) -> str:
    """``1h 2m 3s``, ``4m 0s`` or ``-12s``."""
    sign = "-" if seconds < 0 else ""
    left = round(abs(seconds))
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    if hours:
        return f"{sign}{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{sign}{minutes}m {secs}s"
    return f"{sign}{secs}s"


# -- inspect --------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who STS says the credentials belong to."""

    account: str
    arn: str


@dataclass(frozen=True)
class Finding:
    """A warning: a short stable ``code`` and a one-line ``message``."""

    code: str
    message: str


@dataclass(frozen=True)
class Schedule:
    """When botocreds would refresh, under a policy, credentials received now."""

    refresh_at: datetime
    earliest_refresh_at: datetime
    refresh_in: float
    earliest_refresh_in: float


@dataclass(frozen=True)
class Report:
    """Everything ``inspect`` found. Holds no secret: the access key is masked."""

    provider: str
    access_key: str
    has_token: bool
    expires_at: datetime | None
    remaining: float | None
    schedule: Schedule | None
    region: str | None
    sts_endpoint: str | None
    identity: Identity | None
    clock_skew: float | None
    warnings: list[Finding] = field(default_factory=list)
    #: The shared-store name of the credentials' source (``None``: botocreds cannot
    #: name it, so only clients of this one credentials object share a refresher).
    source: str | None = None
    #: The policy the schedule was computed with, and where it came from.
    policy: RefreshPolicy = field(default_factory=RefreshPolicy)
    policy_origin: str = "default policy"

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-friendly dict (the ``--json`` output)."""
        schedule = self.schedule
        return {
            "provider": self.provider,
            "access_key": self.access_key,
            "expires_at": _iso(self.expires_at),
            "remaining_seconds": None if self.remaining is None else round(self.remaining, 3),
            "refresh_at": None if schedule is None else _iso(schedule.refresh_at),
            "refresh_in_seconds": None if schedule is None else round(schedule.refresh_in, 3),
            "earliest_refresh_at": None if schedule is None else _iso(schedule.earliest_refresh_at),
            "earliest_refresh_in_seconds": (
                None if schedule is None else round(schedule.earliest_refresh_in, 3)
            ),
            "sts_endpoint": self.sts_endpoint,
            "region": self.region,
            "identity": (
                None
                if self.identity is None
                else {"account": self.identity.account, "arn": self.identity.arn}
            ),
            "clock_skew_seconds": None if self.clock_skew is None else round(self.clock_skew, 1),
            "source": self.source,
            "policy": dataclasses.asdict(self.policy),
            "policy_origin": self.policy_origin,
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
        }

    def as_text(self) -> str:
        """The report as aligned ``key: value`` lines, then the warnings."""
        rows: list[tuple[str, str]] = [
            ("provider", self.provider),
            ("access key", self.access_key + ("" if self.has_token else " (no session token)")),
        ]
        if self.expires_at is None or self.remaining is None:
            rows.append(("expires at", "never"))
        else:
            rows.append(("expires at", _utc(self.expires_at)))
            rows.append(("remaining", f"{_span(self.remaining)} ({self.remaining:.0f}s)"))
        if self.schedule is None:
            rows.append(("refresh at", "never: these credentials do not expire"))
        else:
            schedule = self.schedule
            rows.append(
                (
                    "refresh at",
                    f"{_utc(schedule.refresh_at)} (+{_span(schedule.refresh_in)}, "
                    f"{self.policy_origin})",
                )
            )
            rows.append(
                (
                    "earliest refresh",
                    f"{_utc(schedule.earliest_refresh_at)} "
                    f"(+{_span(schedule.earliest_refresh_in)}, with full jitter)",
                )
            )
        shared = self.source or "not named: shared only by clients of this credentials object"
        rows.append(("source", shared))
        rows.append(("region", self.region or "none (STS uses the global endpoint)"))
        rows.append(("sts endpoint", self.sts_endpoint or "unknown"))
        if self.identity is not None:
            rows.append(("account", self.identity.account))
            rows.append(("arn", self.identity.arn))
        if self.clock_skew is not None:
            rows.append(("clock skew", f"{self.clock_skew:+.1f}s (from the STS Date header)"))
        width = max(len(key) for key, _ in rows) + 1
        lines = [f"{key + ':':<{width}} {value}" for key, value in rows]
        if self.warnings:
            lines.append("")
            lines.extend(f"warning: {w.message}" for w in self.warnings)
        return "\n".join(lines)


def schedule_for(policy: RefreshPolicy, received_at: datetime, expires_at: datetime) -> Schedule:
    """The refresh time with no jitter, and the earliest with full jitter, for credentials
    received at ``received_at``."""
    latest = policy.refresh_at(received_at, expires_at, 0.0)
    earliest = policy.refresh_at(received_at, expires_at, math.nextafter(1.0, 0.0))
    return Schedule(
        refresh_at=latest,
        earliest_refresh_at=earliest,
        refresh_in=(latest - received_at).total_seconds(),
        earliest_refresh_in=(earliest - received_at).total_seconds(),
    )


def clock_skew(date_header: str | None, sent: float, received: float) -> float | None:
    """How far the server clock (from an HTTP ``Date`` header) is ahead of ours, in seconds.

    ``sent`` and ``received`` are the local epoch times around the request; the
    server's answer is compared with their midpoint. ``None`` if the header is
    missing or unreadable.
    """
    if not date_header:
        return None
    try:
        server = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if server.tzinfo is None:
        server = server.replace(tzinfo=timezone.utc)
    # The header has whole seconds: the server's time was somewhere in the next one.
    return server.timestamp() + 0.5 - (sent + received) / 2.0


def findings(
    *,
    method: str,
    has_token: bool,
    remaining: float | None,
    sts_endpoint: str | None,
    skew: float | None,
    policy: RefreshPolicy,
) -> list[Finding]:
    """The warnings ``inspect`` prints for what it found."""
    found: list[Finding] = []
    if remaining is not None:
        if remaining <= 0:
            found.append(Finding("expired", "these credentials have already expired"))
        elif remaining <= policy.floor:
            found.append(
                Finding(
                    "inside-floor",
                    f"these credentials expire in {remaining:.0f}s, within the default "
                    f"{policy.floor:g}s floor: botocreds would refuse them",
                )
            )
        if remaining <= BOTOCORE_ADVISORY_WINDOW:
            found.append(
                Finding(
                    "short-lived",
                    "these credentials live 15 minutes or less: botocore would refresh "
                    "these on every request (botocreds refreshes them once per lifetime)",
                )
            )
    if sts_endpoint is not None and urlsplit(sts_endpoint).hostname == GLOBAL_STS_HOST:
        found.append(
            Finding(
                "global-sts-endpoint",
                f"STS calls go to the global endpoint {sts_endpoint}: set a region and "
                "AWS_STS_REGIONAL_ENDPOINTS=regional (or sts_regional_endpoints = regional) "
                "so they stay in-region",
            )
        )
    if skew is not None and abs(skew) > SKEW_LIMIT:
        direction = "behind" if skew > 0 else "ahead of"
        found.append(
            Finding(
                "clock-skew",
                f"this machine's clock is {abs(skew):.0f}s {direction} STS's: expiry times "
                "and signatures depend on it (requests more than 5 minutes off are rejected)",
            )
        )
    if method in STATIC_METHODS and not has_token:
        found.append(
            Finding(
                "long-term-keys",
                f"long-term access keys from {method}: prefer a role (assume_role, SSO, "
                "web identity or instance/container roles) with temporary credentials",
            )
        )
    return found


def _resolve(session: boto3.Session) -> tuple[Credentials, ReadOnlyCredentials, datetime | None]:
    """The session's credentials, their current values and expiry.

    Reads a ``RefreshableCredentials`` without running botocore's own refresh,
    which would fetch a new set at once when less than 15 minutes are left.
    A set botocreds would refuse (a field that is not a string) is refused,
    naming the field and its type, never its value.
    """
    with _credential_errors("credentials unavailable", reads_answers=True):
        credentials = session.get_credentials()
        if credentials is None:
            raise _no_credentials(session)
        peeked = None
        if isinstance(credentials, RefreshableCredentials):
            peeked = _botocore.peek(credentials)
            if peeked is None:  # deferred: nothing fetched yet
                credentials.get_frozen_credentials()
                peeked = _botocore.peek(credentials)
        if peeked is None:
            frozen, expires_at = credentials.get_frozen_credentials(), None
        else:
            frozen, expiry = peeked
            # A sentinel expiry (datetime.max, year 9999) is no expiry.
            expires_at = utc_datetime(to_epoch(expiry))
    try:
        check_fields(frozen)
    except BadAnswer as error:
        method = credentials.method or "unknown"
        raise CommandError(
            EXIT_UNAVAILABLE, f"credentials unavailable from {method}: {describe_error(error)}"
        ) from error
    return credentials, frozen, expires_at


def inspect(
    profile: str | None = None, region: str | None = None, *, network: bool = True
) -> Report:
    """Resolve the credential chain as boto3 would, and explain the result.

    Raises :class:`CommandError` when no credentials can be had or the
    configuration is wrong. A failed ``GetCallerIdentity`` call is a warning.
    """
    session = _session(profile, region)
    policy, origin = _configured_policy(session)
    credentials, frozen, expires_at = _resolve(session)
    now = datetime.now(timezone.utc)
    method = credentials.method or "unknown"
    has_token = bool(frozen.token)
    remaining = None if expires_at is None else (expires_at - now).total_seconds()
    schedule = None if expires_at is None else schedule_for(policy, now, expires_at)

    with _credential_errors("cannot create an STS client", EXIT_USAGE):
        # Signs with exactly the values inspected, so botocore does not refresh them.
        sts = session.client(
            "sts",
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=5,
                read_timeout=10,
            ),
        )
    sts_endpoint: str | None = sts.meta.endpoint_url
    identity: Identity | None = None
    skew: float | None = None
    extra: list[Finding] = []
    if network:
        sent = time.time()
        try:
            answer = sts.get_caller_identity()
        except (BotoCoreError, ClientError) as error:
            extra.append(
                Finding("identity-unavailable", f"sts:GetCallerIdentity failed: {_one_line(error)}")
            )
        else:
            received = time.time()
            identity = Identity(account=answer.get("Account", ""), arn=answer.get("Arn", ""))
            headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            skew = clock_skew(headers.get("date"), sent, received)

    warnings = findings(
        method=method,
        has_token=has_token,
        remaining=remaining,
        sts_endpoint=sts_endpoint,
        skew=skew,
        policy=policy,
    )
    return Report(
        provider=method,
        access_key=mask_access_key(frozen.access_key),
        has_token=has_token,
        expires_at=expires_at,
        remaining=remaining,
        schedule=schedule,
        region=session.region_name,
        sts_endpoint=sts_endpoint,
        identity=identity,
        clock_skew=skew,
        warnings=warnings + extra,
        source=_source_name(credentials),
        policy=policy,
        policy_origin=origin,
    )


def _run_inspect(args: argparse.Namespace, out: IO[str]) -> int:
    report = inspect(args.profile, args.region, network=not args.no_network)
    text = json.dumps(report.as_json(), indent=2) if args.json else report.as_text()
    try:
        out.write(text + "\n")
        out.flush()
    except BrokenPipeError:  # `botocreds inspect | head -1`: the reader has gone
        _silence_stdout(out)
    return EXIT_OK


# -- watch ----------------------------------------------------------------------


class EventPrinter:
    """A reporter that prints one line per event, timestamped in UTC, and counts them.

    Called on the event-delivery thread; lines never interleave. After
    ``max_events`` lines, or once the output is gone (a closed pipe), it prints
    nothing more and sets :attr:`done`.
    """

    def __init__(self, out: IO[str], *, as_json: bool, max_events: int | None) -> None:
        self._out = out
        self._json = as_json
        self._max = max_events
        self._lock = threading.Lock()
        self.printed = 0
        self.done = threading.Event()
        self.output_closed = False

    def stop(self) -> None:
        """Print nothing more; returns once a line being printed is done."""
        with self._lock:
            self.done.set()

    def __call__(self, event: RefreshEvent, /) -> None:
        """Print ``event`` as one line."""
        with self._lock:
            if self.done.is_set():
                return
            now = datetime.now(timezone.utc)
            if self._json:
                line = json.dumps(
                    {"time": now.isoformat(timespec="milliseconds"), **as_dict(event)}
                )
            else:
                stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
                line = f"{stamp} {describe(event)}"
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
                self.output_closed = True
                self.done.set()
                return
            self.printed += 1
            if self._max is not None and self.printed >= self._max:
                self.done.set()


def _policy(args: argparse.Namespace) -> RefreshPolicy:
    """The default policy with the knobs given on the command line."""
    default = RefreshPolicy()
    floor: float | None = args.floor
    fraction: float | None = args.fraction
    min_interval: float | None = args.min_interval
    try:
        return RefreshPolicy(
            floor=default.floor if floor is None else floor,
            fraction=default.fraction if fraction is None else fraction,
            min_interval=default.min_interval if min_interval is None else min_interval,
        )
    except (TypeError, ValueError) as error:
        message = str(error).replace("RefreshPolicy.", "--").replace("min_interval", "min-interval")
        raise CommandError(EXIT_USAGE, f"invalid policy: {message}") from error


@contextlib.contextmanager
def _quiet_botocreds_logger() -> Iterator[None]:
    """Keep event log lines off stderr while the events themselves are printed.

    Without a handler, Python's last-resort handler would print every warning
    event a second time.
    """
    logger = logging.getLogger("botocreds")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def _interrupt_sets(event: threading.Event) -> Iterator[None]:
    """While watching, Ctrl-C also sets ``event``, which the main loop reads.

    The KeyboardInterrupt is still raised, so a slow first fetch is cut short;
    but it can land anywhere, including places that swallow it (a finalizer or
    a weakref callback), and the flag cannot be lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        event.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_watch(args: argparse.Namespace, out: IO[str]) -> int:
    policy = _policy(args)
    session = _session(args.profile, args.region)
    printer = EventPrinter(out, as_json=args.json, max_events=args.max_events)
    interrupted = threading.Event()
    with _quiet_botocreds_logger(), _interrupt_sets(interrupted):
        try:
            with _credential_errors("credentials unavailable", reads_answers=True):
                if session.get_credentials() is None:
                    raise _no_credentials(session)
                # The session stays referenced until the end: it keeps the refresher alive.
                wrap(session, policy=policy, reporter=printer)
            while not printer.done.wait(0.2) and not interrupted.is_set():
                pass
        finally:
            shutdown()
            printer.stop()  # a mint still in flight must not print during exit
    if printer.output_closed:
        _silence_stdout(out)
    return EXIT_INTERRUPTED if interrupted.is_set() else EXIT_OK


def _silence_stdout(out: IO[str]) -> None:
    """After a closed pipe, point the stream at /dev/null so that exit does not complain."""
    try:
        descriptor = out.fileno()
    except (OSError, ValueError, AttributeError):
        return
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, descriptor)
        os.close(devnull)


# -- main -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``botocreds`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code; never raises for bad arguments, missing credentials
    or configuration errors, which are reported as one line on stderr.
    """
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(None if argv is None else list(argv))
        except SystemExit as exit_:  # --help and --version
            return exit_.code if isinstance(exit_.code, int) else EXIT_OK
        if args.command == "inspect":
            return _run_inspect(args, sys.stdout)
        return _run_watch(args, sys.stdout)
    except CommandError as error:
        sys.stderr.write(f"botocreds: error: {error.message}\n")
        sys.stderr.flush()
        return error.code
    except KeyboardInterrupt:
        shutdown()
        return EXIT_INTERRUPTED


__all__ = ["CommandError", "EventPrinter", "Report", "build_parser", "inspect", "main"]
