"""The ``botocreds`` command, against a local moto server: in-process and as a subprocess.

In-process tests call :func:`botocreds._cli.main` and read what it printed with
``capsys``; subprocess tests run ``python -m botocreds`` and the ``botocreds``
console script with the test's hermetic AWS settings (copied from
``os.environ``) and ``AWS_ENDPOINT_URL_STS`` pointing at moto. Every run checks
that no secret, no session token and no full access key appears on stdout or
stderr, and that errors are one line, never a traceback.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any

import boto3
import pytest
from botocore.credentials import RefreshableCredentials

from botocreds import _cli
from botocreds._cli import clock_skew, findings, main
from botocreds._policy import RefreshPolicy

from ._process_creds import MakeProcessProfile
from .conftest import AwsFiles

# What the credential_process helper and the static profile hand out: none of
# these may ever be printed (the process helper's keys are ASIAPROC000000000001...).
SECRETS = ("process-secret-", "process-token-", "ASIAPROC0000", "static-secret-value")
STATIC_KEY = "AKIATESTSTATIC00WXYZ"
STATIC_SECRET = "static-secret-value-0123456789"
MOTO_ACCOUNT = "123456789012"
INSPECT_FIELDS = {
    "provider",
    "access_key",
    "expires_at",
    "remaining_seconds",
    "refresh_at",
    "earliest_refresh_at",
    "sts_endpoint",
    "region",
    "identity",
    "warnings",
}
# Small enough knobs for credentials that live a few seconds.
FAST_POLICY = ("--floor", "1", "--fraction", "0.5", "--min-interval", "0.5")
WATCH_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z custom-process: refreshed in [\d.]+s, "
    r"key \*\*\*\*(\d{4}), \d+s left$"
)
HOW = ("module", "script")


@dataclass(frozen=True)
class Run:
    """What one run of the command returned and printed."""

    code: int
    out: str
    err: str


def assert_clean(run: Run) -> None:
    """No secret, token or full key on either stream, and no traceback."""
    for stream in (run.out, run.err):
        for secret in (*SECRETS, STATIC_KEY, STATIC_SECRET):
            assert secret not in stream
        assert "Traceback" not in stream


def assert_one_error_line(run: Run) -> None:
    """An error: nothing on stdout, one prefixed line on stderr."""
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("botocreds: error: ")
    assert_clean(run)


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """Call ``main(args)`` and capture what it printed."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    run = Run(code, captured.out, captured.err)
    assert_clean(run)
    return run


def command(how: str) -> list[str]:
    """``python -m botocreds``, or the installed console script."""
    if how == "module":
        return [sys.executable, "-m", "botocreds"]
    script = shutil.which("botocreds")
    assert script is not None, "the botocreds console script is not installed (pip install -e .)"
    return [script]


def child_env() -> dict[str, str]:
    """The test's environment: the hermetic AWS settings and any endpoint override."""
    return dict(os.environ)


def as_subprocess(how: str, *args: str, timeout: float = 60.0) -> Run:
    """Run the command in a child process with the test's environment."""
    result = subprocess.run(
        [*command(how), *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
        check=False,
    )
    run = Run(result.returncode, result.stdout, result.stderr)
    assert_clean(run)
    return run


@pytest.fixture
def sts_on_moto(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Send every STS call, in this process and in children, to moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def static_profile(hermetic_aws: AwsFiles) -> str:
    """A profile with long-term access keys in the shared credentials file."""
    with hermetic_aws.credentials.open("a") as credentials:
        credentials.write(
            f"[static]\naws_access_key_id = {STATIC_KEY}\n"
            f"aws_secret_access_key = {STATIC_SECRET}\n\n"
        )
    with hermetic_aws.config.open("a") as config:
        config.write("[profile static]\nregion = eu-west-1\n\n")
    return "static"


@pytest.fixture
def failing_profile(hermetic_aws: AwsFiles) -> str:
    """A ``credential_process`` profile whose process exits non-zero."""
    script = "import sys; sys.stderr.write('session expired, log in again\\n'); sys.exit(3)"
    with hermetic_aws.config.open("a") as config:
        config.write(
            "[profile broken]\n"
            f"credential_process = {shlex.join([sys.executable, '-c', script])}\n"
            "region = us-east-1\n\n"
        )
    return "broken"


def parse_time(text: Any) -> datetime:
    """An ISO 8601 UTC time from the JSON output."""
    assert isinstance(text, str)
    when = datetime.fromisoformat(text)
    assert when.utcoffset() is not None and when.utcoffset() == timezone.utc.utcoffset(None)
    return when


# -- help and usage -------------------------------------------------------------


def test_help_exits_0_and_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], ["inspect", "--help"], ["watch", "--help"]):
        run = in_process(capsys, *args)
        assert run.code == 0
        assert "exit codes:" in run.out
        for code in ("0", "1", "2", "130"):
            assert re.search(rf"^  {code} +\S", run.out, re.MULTILINE), run.out


@pytest.mark.parametrize("how", HOW)
def test_help_as_a_subprocess(how: str) -> None:
    run = as_subprocess(how, "--help")
    assert run.code == 0
    assert "inspect" in run.out and "watch" in run.out
    assert "130  interrupted" in run.out


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["inspect", "--bogus"],
        ["watch", "--max-events", "0"],
        ["watch", "--max-events", "many"],
        ["watch", "--floor", "-1"],
        ["watch", "--fraction", "2"],
        ["watch", "--min-interval", "soon"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    run = in_process(capsys, *args)
    assert run.code == 2
    assert_one_error_line(run)


# -- inspect --------------------------------------------------------------------


@pytest.mark.integration
def test_inspect_short_lived_process_profile(
    capsys: pytest.CaptureFixture[str],
    sts_on_moto: str,
    make_process_profile: MakeProcessProfile,
) -> None:
    profile = make_process_profile(lifetime=600, delay=0.1)
    run = in_process(capsys, "inspect", "--profile", profile.name)
    assert run.code == 0, run.err
    assert run.err == ""
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(": ") for line in run.out.splitlines())
        if value and not key.startswith("warning")
    )
    assert fields["provider"] == "custom-process"
    assert fields["access key"] == "****0001"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields["expires at"])
    assert fields["remaining"].endswith("s)")
    assert "default policy" in fields["refresh at"]
    assert "full jitter" in fields["earliest refresh"]
    assert fields["region"] == "us-east-1"
    assert fields["sts endpoint"] == sts_on_moto
    assert fields["account"] == MOTO_ACCOUNT
    assert fields["arn"].startswith(f"arn:aws:sts::{MOTO_ACCOUNT}:")
    assert "botocore would refresh these on every request" in run.out
    assert "15 minutes or less" in run.out
    assert "long-term" not in run.out
    # Reading the expiry did not run botocore's refresh, and neither did signing.
    assert profile.calls() == 1


@pytest.mark.integration
@pytest.mark.parametrize("how", ["in-process", *HOW])
def test_inspect_json(
    how: str,
    capsys: pytest.CaptureFixture[str],
    sts_on_moto: str,
    make_process_profile: MakeProcessProfile,
) -> None:
    profile = make_process_profile(lifetime=600, delay=0.1)
    args = ("inspect", "--profile", profile.name, "--json")
    run = in_process(capsys, *args) if how == "in-process" else as_subprocess(how, *args)
    assert run.code == 0, run.err
    assert run.err == ""
    report = json.loads(run.out)
    assert set(report) >= INSPECT_FIELDS
    assert report["provider"] == "custom-process"
    assert report["access_key"] == "****0001"
    assert 0 < report["remaining_seconds"] <= 600
    expires_at = parse_time(report["expires_at"])
    refresh_at = parse_time(report["refresh_at"])
    earliest = parse_time(report["earliest_refresh_at"])
    assert earliest <= refresh_at < expires_at
    # The default policy: 80% of the lifetime, pulled up to 10% earlier by jitter.
    remaining = report["remaining_seconds"]
    assert report["refresh_in_seconds"] == pytest.approx(0.8 * remaining, abs=2.0)
    assert report["earliest_refresh_in_seconds"] == pytest.approx(0.7 * remaining, abs=2.0)
    assert report["sts_endpoint"] == sts_on_moto
    assert report["region"] == "us-east-1"
    assert report["identity"]["account"] == MOTO_ACCOUNT
    assert report["identity"]["arn"].startswith(f"arn:aws:sts::{MOTO_ACCOUNT}:")
    assert isinstance(report["clock_skew_seconds"], float)
    codes = [warning["code"] for warning in report["warnings"]]
    assert codes == ["short-lived"]
    assert profile.calls() == 1


@pytest.mark.integration
def test_inspect_names_the_source_and_schedules_with_the_configured_policy(
    capsys: pytest.CaptureFixture[str],
    sts_on_moto: str,
    make_process_profile: MakeProcessProfile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = make_process_profile(lifetime=600, delay=0.1)
    default = json.loads(in_process(capsys, "inspect", "--profile", profile.name, "--json").out)
    assert default["source"].startswith("custom-process-")
    assert default["policy_origin"] == "default policy"
    monkeypatch.setenv("BOTOCREDS_FRACTION", "0.5")
    run = in_process(capsys, "inspect", "--profile", profile.name, "--json")
    report = json.loads(run.out)
    assert report["source"] == default["source"], "the same source, however often resolved"
    assert report["policy"]["fraction"] == 0.5
    assert report["policy_origin"] == "policy from BOTOCREDS_* or botocreds_* settings"
    assert report["refresh_in_seconds"] == pytest.approx(0.5 * report["remaining_seconds"], abs=2)
    text = in_process(capsys, "inspect", "--profile", profile.name).out
    assert re.search(r"^source: +custom-process-[0-9a-f]{32}$", text, re.MULTILINE)
    assert "BOTOCREDS_* or botocreds_* settings)" in text


def test_inspect_refuses_a_bad_botocreds_setting_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTOCREDS_FLOOR", "banana")
    run = in_process(capsys, "inspect", "--no-network")
    assert run.code == 2
    assert_one_error_line(run)
    assert "BOTOCREDS_FLOOR" in run.err


@pytest.mark.integration
def test_inspect_static_keys_suggests_roles(
    capsys: pytest.CaptureFixture[str], sts_on_moto: str, static_profile: str
) -> None:
    run = in_process(capsys, "inspect", "--profile", static_profile)
    assert run.code == 0, run.err
    assert "shared-credentials-file" in run.out
    assert "****WXYZ (no session token)" in run.out
    assert re.search(r"^expires at: +never$", run.out, re.MULTILINE)
    assert "warning: long-term access keys from shared-credentials-file" in run.out
    assert "prefer a role" in run.out
    assert "15 minutes" not in run.out

    report = json.loads(in_process(capsys, "inspect", "--profile", static_profile, "--json").out)
    assert report["expires_at"] is None and report["refresh_at"] is None
    assert report["region"] == "eu-west-1"
    assert report["identity"]["account"] == MOTO_ACCOUNT
    assert [w["code"] for w in report["warnings"]] == ["long-term-keys"]


def test_inspect_warns_about_the_global_sts_endpoint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, static_profile: str
) -> None:
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    args = ("inspect", "--profile", static_profile, "--region", "us-east-1", "--no-network")
    run = in_process(capsys, *args)
    assert run.code == 0, run.err
    assert "warning: STS calls go to the global endpoint https://sts.amazonaws.com" in run.out

    report = json.loads(in_process(capsys, *args, "--json").out)
    assert report["sts_endpoint"] == "https://sts.amazonaws.com"
    assert report["region"] == "us-east-1"
    assert report["identity"] is None and report["clock_skew_seconds"] is None
    assert "global-sts-endpoint" in [w["code"] for w in report["warnings"]]

    # The regional default: no warning.
    monkeypatch.delenv("AWS_STS_REGIONAL_ENDPOINTS")
    report = json.loads(in_process(capsys, *args, "--json").out)
    assert report["sts_endpoint"] == "https://sts.us-east-1.amazonaws.com"
    assert "global-sts-endpoint" not in [w["code"] for w in report["warnings"]]


# -- error paths ----------------------------------------------------------------


@pytest.mark.parametrize("subcommand", ["inspect", "watch"])
def test_missing_profile_exits_2(capsys: pytest.CaptureFixture[str], subcommand: str) -> None:
    run = in_process(capsys, subcommand, "--profile", "no-such-profile")
    assert run.code == 2
    assert_one_error_line(run)
    assert "no-such-profile" in run.err


@pytest.mark.parametrize("how", HOW)
def test_missing_profile_as_a_subprocess(how: str) -> None:
    run = as_subprocess(how, "inspect", "--profile", "no-such-profile")
    assert run.code == 2
    assert_one_error_line(run)
    assert "no-such-profile" in run.err


@pytest.mark.parametrize("subcommand", ["inspect", "watch"])
def test_no_credentials_exits_1(capsys: pytest.CaptureFixture[str], subcommand: str) -> None:
    run = in_process(capsys, subcommand)
    assert run.code == 1
    assert_one_error_line(run)
    assert "no credentials found" in run.err


def test_no_credentials_as_a_subprocess() -> None:
    run = as_subprocess("module", "inspect", "--json")
    assert run.code == 1
    assert_one_error_line(run)


@pytest.mark.parametrize("subcommand", ["inspect", "watch"])
def test_a_source_that_cannot_mint_exits_1(
    capsys: pytest.CaptureFixture[str], failing_profile: str, subcommand: str
) -> None:
    run = in_process(capsys, subcommand, "--profile", failing_profile)
    assert run.code == 1
    assert_one_error_line(run)
    assert "custom-process" in run.err
    assert "session expired, log in again" in run.err


def test_a_source_that_cannot_mint_as_a_subprocess(failing_profile: str) -> None:
    run = as_subprocess("script", "inspect", "--profile", failing_profile)
    assert run.code == 1
    assert_one_error_line(run)
    assert "CredentialRetrievalError" in run.err


# -- watch ----------------------------------------------------------------------


@pytest.mark.integration
def test_watch_prints_max_events_then_exits_0(
    capsys: pytest.CaptureFixture[str], make_process_profile: MakeProcessProfile
) -> None:
    profile = make_process_profile(lifetime=4.0, delay=0.2)
    started = time.monotonic()
    run = in_process(capsys, "watch", "--profile", profile.name, "--max-events", "3", *FAST_POLICY)
    elapsed = time.monotonic() - started
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert len(lines) == 3, run.out
    keys = []
    for line in lines:
        match = WATCH_LINE.match(line)
        assert match, line
        keys.append(match.group(1))
    assert len(set(keys)) == 3  # each line is a new set
    assert elapsed < 30.0


@pytest.mark.integration
def test_watch_json_lines_as_a_subprocess(make_process_profile: MakeProcessProfile) -> None:
    profile = make_process_profile(lifetime=4.0, delay=0.2)
    args = ("watch", "--profile", profile.name, "--max-events", "2", "--json", *FAST_POLICY)
    run = as_subprocess("script", *args)
    assert run.code == 0, run.err
    events = [json.loads(line) for line in run.out.splitlines()]
    assert len(events) == 2
    for event in events:
        assert event["event"] == "RefreshSucceeded"
        assert event["source"] == "custom-process"
        assert re.fullmatch(r"\*\*\*\*\d{4}", event["access_key"])
        assert 0 < event["remaining"] <= 4.0
        assert parse_time(event["time"]) <= parse_time(event["expires_at"])


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _default_sigint() -> None:
    # A shell may start the test run with SIGINT ignored, and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.integration
def test_watch_interrupted_exits_130(make_process_profile: MakeProcessProfile) -> None:
    profile = make_process_profile(lifetime=4.0, delay=0.2)
    child = subprocess.Popen(
        [*command("module"), "watch", "--profile", profile.name, *FAST_POLICY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        preexec_fn=_default_sigint,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert child.stdout is not None
    reader = threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=30.0)
        assert WATCH_LINE.match(first.rstrip("\n")), first
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=30.0)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    reader.join(timeout=5.0)
    assert child.stderr is not None
    err = child.stderr.read()
    child.stderr.close()
    child.stdout.close()
    assert code == 130, err
    assert "Traceback" not in err
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert_clean(Run(code, first + "".join(rest), err))


# -- the checks behind the warnings ------------------------------------------------


def test_clock_skew_from_a_date_header() -> None:
    local = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    header = "Wed, 02 Jan 2030 03:06:05 GMT"  # two minutes ahead
    skew = clock_skew(header, local - 0.1, local + 0.1)
    assert skew == pytest.approx(120.5)
    assert clock_skew(None, local, local) is None
    assert clock_skew("not a date", local, local) is None


def _codes(**overrides: Any) -> Sequence[str]:
    values: dict[str, Any] = {
        "method": "assume-role",
        "has_token": True,
        "remaining": 3600.0,
        "sts_endpoint": "https://sts.eu-west-1.amazonaws.com",
        "skew": 0.0,
        "policy": RefreshPolicy(),
    }
    values.update(overrides)
    return [finding.code for finding in findings(**values)]


def test_findings() -> None:
    assert _codes() == []
    assert _codes(skew=90.0) == ["clock-skew"]
    assert _codes(skew=-90.0) == ["clock-skew"]
    assert _codes(skew=59.0) == []
    assert _codes(remaining=900.0) == ["short-lived"]
    assert _codes(remaining=30.0) == ["inside-floor", "short-lived"]
    assert _codes(remaining=-5.0) == ["expired", "short-lived"]
    assert _codes(sts_endpoint="https://sts.amazonaws.com") == ["global-sts-endpoint"]
    assert _codes(method="env", has_token=False, remaining=None) == ["long-term-keys"]
    assert _codes(method="env", has_token=True, remaining=None) == []


def test_inspect_into_a_pipe_that_closes_early_exits_quietly(static_profile: str) -> None:
    process = subprocess.Popen(
        [*command("module"), "inspect", "--profile", static_profile, "--no-network"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `botocreds inspect | true`
    errors = process.stderr.read().decode()
    assert process.wait(60) == 0, errors
    assert "Traceback" not in errors


def test_inspect_reads_a_sentinel_expiry_with_an_offset_as_no_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 9999-12-31T23:59:59-05:00 is past the end of datetime in UTC: astimezone()
    # overflowed; it is the "never expires" sentinel and shows as no expiry.
    metadata = {
        "access_key": "AKIASENTINEL0000",
        "secret_key": "sentinel-secret",
        "token": "sentinel-token",
        "expiry_time": "9999-12-31T23:59:59-05:00",
    }
    credentials = RefreshableCredentials.create_from_metadata(
        metadata, lambda: metadata, "test-sentinel"
    )
    session = boto3.Session(region_name="us-east-1")
    monkeypatch.setattr(session, "get_credentials", lambda: credentials)
    _, frozen, expiry = _cli._resolve(session)
    assert frozen.access_key == "AKIASENTINEL0000"
    assert expiry is None
