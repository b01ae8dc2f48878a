"""Secret keys, session tokens and full access keys never reach logs, reprs, errors or events."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import botocreds
from botocreds import CredentialsUnavailable, RefreshEvent, RefreshPolicy

from ._fakes import Harness

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
