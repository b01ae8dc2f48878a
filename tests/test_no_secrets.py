"""Secret keys, session tokens and full access keys never reach logs, reprs, errors, events
or what the command prints."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import shlex
import sys
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import botocreds
from botocreds import CredentialsUnavailable, RefreshEvent, RefreshPolicy
from botocreds._cli import main

from ._fakes import Harness, Return
from .conftest import AwsFiles

POLICY = RefreshPolicy(floor=10.0, failure_threshold=2, cooldown=30.0, wait_timeout=0.0)


@pytest.fixture(autouse=True)
def _no_process_reporters() -> Iterator[None]:
    yield
    botocreds.set_reporters(None)


def test_nothing_botocreds_says_contains_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    events: list[RefreshEvent] = []
    botocreds.set_reporters([events.append])
    said: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="botocreds"):
        h = Harness(POLICY, lifetime=100.0, inline=True)
        h.tick(80.0)  # a refresh
        h.fetcher.script = [OSError("down"), OSError("down"), OSError("down")]
        h.tick(90.0)  # failures, the breaker opens, the set expires
        try:
            h.key()
        except CredentialsUnavailable as error:
            said += [str(error), repr(error)]
        h.fetcher.script = []
        h.tick(40.0)  # recovery
        h.refresher._invalidate("ExpiredToken", h.refresher._snapshot.frozen.access_key)
        said += [repr(h.refresher), repr(h.refresher.credentials), repr(h.refresher.status())]
        said += [repr(status) for status in botocreds.health()]
    said += [repr(event) for event in events]
    said += [caplog.text]
    said += [repr(record.__dict__) for record in caplog.records]

    issued = h.fetcher.issued
    assert len(issued) >= 3
    text = "\n".join(said)
    for access_key, secret_key, token in issued:
        assert secret_key not in text
        assert token not in text
        assert access_key not in text, "full access keys are masked"
    assert issued[-1][0][-4:] in text, "the masked form is shown"


@contextlib.contextmanager
def botocreds_records() -> Iterator[list[logging.LogRecord]]:
    """Every record the botocreds logger emits meanwhile, down to DEBUG."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("botocreds")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _chain_said(error: BaseException) -> list[str]:
    """What ``error`` and every exception chained behind it show: str, repr and attributes."""
    said: list[str] = []
    chain: BaseException | None = error
    while chain is not None:
        said += [str(chain), repr(chain), repr(vars(chain))]
        chain = chain.__cause__ or chain.__context__
    return said


def _everything_said(
    said: list[str], events: list[RefreshEvent], records: list[logging.LogRecord]
) -> str:
    """``said``, with every event and every log record (message and attributes), as one text."""
    return "\n".join(
        [
            *said,
            *(repr(event) for event in events),
            *(record.getMessage() for record in records),
            *(repr(record.__dict__) for record in records),
        ]
    )


# A secret that cannot occur by chance in anything botocreds writes itself.
SECRETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/+", min_size=12, max_size=40).map(
    lambda tail: "S3CRET" + tail
)


@st.composite
def bad_answers(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """A fetcher's answer that botocreds must refuse, with a secret somewhere in it."""
    secret = draw(SECRETS)
    wrapped = draw(
        st.sampled_from(
            [
                lambda s: s,  # the secret where a date belongs (two fields swapped)
                lambda s: [s],
                lambda s: {"value": s},
                lambda s: s.encode(),
                lambda s: f"{s}T00:00:00Z",
            ]
        )
    )
    fields = ["expiry_time", "access_key", "secret_key", "token", "account_id"]
    field = draw(st.sampled_from(fields))
    answer: dict[str, object] = {
        "access_key": "ASIAFAKEBAD00001",
        "secret_key": "wJalrXUtnFEMI/K7MDENG/badanswer",
        "token": "IQoJb3JpZ2luX2VjBADTOKEN",
        "expiry_time": "2099-01-01T00:00:00Z",
    }
    value = wrapped(secret)
    if field in ("access_key", "secret_key", "token", "account_id") and isinstance(value, str):
        # A string in a string field is a valid answer: make it a wrong type instead.
        value = [value]
    answer[field] = value
    return secret, answer


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_answers())
def test_no_part_of_a_bad_answer_reaches_an_exception_a_log_an_event_or_a_status(
    bad: tuple[str, dict[str, object]],
) -> None:
    secret, answer = bad
    events: list[RefreshEvent] = []
    said: list[str] = []
    with botocreds_records() as records:
        h = Harness(POLICY, lifetime=100.0, inline=True)
        h.refresher._reporter = events.append
        h.fetcher.script = [Return(answer)] * 4
        h.tick(95.0)  # due, and the set expires: the bad answers are refused
        try:
            h.key()
        except CredentialsUnavailable as error:
            said += _chain_said(error)
        said += [repr(h.refresher.status()), repr(h.refresher)]
        said += [repr(status) for status in botocreds.health()]
        h.refresher.close()
    assert any("Failed" in type(event).__name__ for event in events), "the answers were refused"
    assert secret not in _everything_said(said, events, records)


# -- the command's output ----------------------------------------------------------

# The botocore ``credential_process`` names of the fields, and what each holds
# in a good answer.
GOOD_PROCESS_ANSWER: dict[str, object] = {
    "Version": 1,
    "AccessKeyId": "ASIAFAKEBAD00001",
    "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/badanswer",
    "SessionToken": "IQoJb3JpZ2luX2VjBADTOKEN",
    "Expiration": "2099-01-01T00:00:00Z",
}
# Wrong values holding no secret, for a field next to a well-placed one.
NOT_SECRETS: dict[str, list[object]] = {
    "Version": [2, "1", None],
    "AccessKeyId": [12345, ["ASIAFAKEBAD00001"], {"value": "x"}, True],
    "SecretAccessKey": [12345, ["x"], False],
    "SessionToken": [12345, ["x"], {"value": "x"}],
    "AccountId": [123456789012, ["123456789012"]],
    "Expiration": ["tomorrow", ["2099-01-01T00:00:00Z"], "2099-13-01T00:00:00Z"],
}


@st.composite
def bad_process_answers(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """A ``credential_process`` answer that botocreds must refuse, with a secret in it.

    Either the secret sits where another field belongs (wrapped in a wrong type
    where a string would be valid), or it sits where it belongs and another
    field has a wrong value.
    """
    secret = draw(SECRETS)
    answer = dict(GOOD_PROCESS_ANSWER)
    if draw(st.booleans()):
        wrapped = draw(
            st.sampled_from(
                [
                    lambda s: s,  # e.g. the secret where the date belongs
                    lambda s: [s],
                    lambda s: {"value": s},
                    lambda s: f"{s}T00:00:00Z",
                ]
            )
        )
        field = draw(st.sampled_from([*NOT_SECRETS]))
        value = wrapped(secret)
        if field not in ("Version", "Expiration") and isinstance(value, str):
            value = [value]  # a string there is a valid answer: a wrong type instead
        answer[field] = value
    else:
        answer[draw(st.sampled_from(["SecretAccessKey", "SessionToken"]))] = secret
        field = draw(st.sampled_from([*NOT_SECRETS]))
        answer[field] = draw(st.sampled_from(NOT_SECRETS[field]))
    return secret, answer


@pytest.fixture
def bad_process_profile(hermetic_aws: AwsFiles) -> Callable[[dict[str, object]], str]:
    """Make profiles whose ``credential_process`` prints a given answer, one per call."""
    serial = itertools.count(1)
    home = hermetic_aws.config.parent

    def make(answer: dict[str, object]) -> str:
        name = f"bad-{next(serial)}"
        printed = home / f"{name}.json"
        printed.write_text(json.dumps(answer))
        script = "import sys; sys.stdout.write(open(sys.argv[1]).read())"
        command = shlex.join([sys.executable, "-I", "-S", "-c", script, str(printed)])
        with hermetic_aws.config.open("a") as config:
            config.write(
                f"[profile {name}]\ncredential_process = {command}\nregion = us-east-1\n\n"
            )
        return name

    return make


def _run_the_command(*args: str) -> tuple[int, str, str, list[logging.LogRecord]]:
    """Run ``botocreds ARGS`` in this process: its exit code, stdout, stderr and log records."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    return code, out.getvalue(), err.getvalue(), records


def _misplaced(field: str, value: object) -> tuple[str, dict[str, object]]:
    return "S3CRETswappedfields0", {**GOOD_PROCESS_ANSWER, field: value}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(bad=bad_process_answers())
# The messages that quoted the answer: dateutil's for the expiry, botocore's for the Version.
@example(bad=_misplaced("Expiration", "S3CRETswappedfields0"))
@example(bad=_misplaced("Expiration", "S3CRETswappedfields0T00:00:00Z"))
@example(bad=_misplaced("Version", "S3CRETswappedfields0"))
@example(bad=_misplaced("Version", "1\nS3CRETswappedfields0"))
@example(bad=_misplaced("AccessKeyId", ["S3CRETswappedfields0"]))
@pytest.mark.parametrize(
    "args", [("inspect", "--no-network"), ("watch", "--max-events", "1")], ids=["inspect", "watch"]
)
def test_no_part_of_a_bad_answer_reaches_what_the_command_prints_or_logs(
    bad_process_profile: Callable[[dict[str, object]], str],
    args: tuple[str, ...],
    bad: tuple[str, dict[str, object]],
) -> None:
    secret, answer = bad
    profile = bad_process_profile(answer)
    code, out, err, records = _run_the_command(*args, "--profile", profile)
    said = [out, err]
    said += [record.getMessage() for record in records]
    said += [repr(record.__dict__) for record in records]
    assert code == 1, (answer, out, err)
    assert err.startswith("botocreds: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert secret not in "\n".join(said)


def _quoting_errors(secret: str) -> list[BaseException]:
    """Errors whose messages quote a bad answer, raised by the code that raises them."""
    from botocore.exceptions import CredentialRetrievalError
    from dateutil.parser import parse

    try:
        parse(secret)  # what botocore's expiry parsing raises for a swapped field
    except Exception as error:
        parsed: BaseException = error
    else:  # pragma: no cover - SECRETS never parse as a date
        raise AssertionError(f"{secret!r} parsed as a date")
    return [
        parsed,
        CredentialRetrievalError(  # botocore's credential_process provider, word for word
            provider="custom-process",
            error_msg=(
                f"Unsupported version '{secret}' for credential process "
                "provider, supported versions: 1"
            ),
        ),
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=SECRETS, which=st.integers(min_value=0, max_value=1), first=st.booleans())
def test_an_error_that_quotes_a_bad_answer_reaches_nothing_botocreds_says(
    secret: str, which: int, first: bool
) -> None:
    error = _quoting_errors(secret)[which]
    assert secret in str(error), "the error really quotes the answer"
    events: list[RefreshEvent] = []
    said: list[str] = []
    raised: list[BaseException] = []
    botocreds.set_reporters([events.append])
    with botocreds_records() as records:
        if first:  # the first mint fails: the constructor raises, chained to a cause
            try:
                Harness(POLICY, lifetime=100.0, inline=True, script=[error] * 4)
            except CredentialsUnavailable as unavailable:
                raised.append(unavailable)
        else:  # a background refresh fails until the set expires
            h = Harness(POLICY, lifetime=100.0, inline=True)
            h.fetcher.script = [error] * 100
            h.tick(95.0)  # due: the refresh fails
            h.tick(10.0)  # and the set expires
            try:
                h.key()
            except CredentialsUnavailable as unavailable:
                raised.append(unavailable)
            said += [repr(h.refresher.status()), repr(h.refresher)]
            said += [repr(status) for status in botocreds.health()]
            h.refresher.close()
        botocreds.shutdown()  # delivers every pending event
    assert raised, "the failing source made the credentials unavailable"
    assert any("Failed" in type(event).__name__ for event in events), "the failures were reported"
    text = _everything_said(said + _chain_said(raised[0]), events, records)
    assert secret not in text
    assert type(error).__name__ in text, "the error is still named"
