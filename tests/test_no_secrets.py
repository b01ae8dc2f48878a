"""Secret keys, session tokens and full access keys never reach logs, reprs, errors or events."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import botocreds
from botocreds import CredentialsUnavailable, RefreshEvent, RefreshPolicy

from ._fakes import Harness, Return

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
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("botocreds")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    said: list[str] = []
    try:
        h = Harness(POLICY, lifetime=100.0, inline=True)
        h.refresher._reporter = events.append
        h.fetcher.script = [Return(answer)] * 4
        h.tick(95.0)  # due, and the set expires: the bad answers are refused
        try:
            h.key()
        except CredentialsUnavailable as error:
            chain: BaseException | None = error
            while chain is not None:
                said += [str(chain), repr(chain)]
                chain = chain.__cause__ or chain.__context__
        said += [repr(h.refresher.status()), repr(h.refresher)]
        said += [repr(status) for status in botocreds.health()]
        h.refresher.close()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    said += [repr(event) for event in events]
    said += [record.getMessage() for record in records]
    said += [repr(record.__dict__) for record in records]
    assert any("Failed" in type(event).__name__ for event in events), "the answers were refused"
    text = "\n".join(said)
    assert secret not in text
