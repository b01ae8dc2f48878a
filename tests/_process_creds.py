"""A ``credential_process`` helper for the integration tests: slow, short-lived, counted.

Usage::

    python tests/_process_creds.py STATE_DIR LIFETIME DELAY

It sleeps ``DELAY`` seconds (a slow source), takes the next serial number from
a counter in ``STATE_DIR``, and prints botocore's ``credential_process`` JSON:
credentials that expire ``LIFETIME`` seconds from now, with an access key unique
to this run (``ASIAPROC000000000001``, ``ASIAPROC000000000002``, ...).

Every run also appends ``ACCESS_KEY EXPIRY_EPOCH`` to ``STATE_DIR/issued``, so a
test can tell when each key it sees on the wire expires. The counter and the
log are updated under an exclusive ``flock``, so concurrent runs count
correctly; :func:`read_state` takes the same lock to read them.

The tests drive it through :class:`ProcessProfile`, defined here too.
Standard library only: botocore runs this file as a separate process.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

COUNTER = "calls"
ISSUED = "issued"
LOCK = "lock"


@contextmanager
def locked(state_dir: Path, operation: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Hold the state directory's lock (exclusive by default)."""
    with open(state_dir / LOCK, "a") as handle:
        fcntl.flock(handle, operation)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_counter(state_dir: Path) -> int:
    try:
        return int((state_dir / COUNTER).read_text() or "0")
    except FileNotFoundError:
        return 0


def read_state(state_dir: Path) -> tuple[int, dict[str, float]]:
    """How many runs have finished, and each issued access key's expiry (epoch seconds)."""
    with locked(state_dir, fcntl.LOCK_SH):
        calls = _read_counter(state_dir)
        try:
            lines = (state_dir / ISSUED).read_text().splitlines()
        except FileNotFoundError:
            lines = []
    issued: dict[str, float] = {}
    for line in lines:
        key, expiry = line.split()
        issued[key] = float(expiry)
    return calls, issued


def iso8601(epoch_ms: int) -> str:
    """``2030-01-02T03:04:05.678Z`` for a time in epoch milliseconds."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def issue(state_dir: Path, lifetime: float) -> dict[str, object]:
    """Count one run and return its ``credential_process`` answer."""
    with locked(state_dir):
        serial = _read_counter(state_dir) + 1
        (state_dir / COUNTER).write_text(str(serial))
        # Whole milliseconds, so the logged expiry is exactly the printed one.
        expires_ms = round((time.time() + lifetime) * 1000)
        access_key = f"ASIAPROC{serial:012d}"
        with open(state_dir / ISSUED, "a") as log:
            log.write(f"{access_key} {expires_ms / 1000:.3f}\n")
    return {
        "Version": 1,
        "AccessKeyId": access_key,
        "SecretAccessKey": f"process-secret-{serial}",
        "SessionToken": f"process-token-{serial}",
        "Expiration": iso8601(expires_ms),
    }


@dataclass(frozen=True)
class ProcessProfile:
    """A config profile whose ``credential_process`` is this script.

    ``command`` is the exact command line botocore runs, as a tuple.
    """

    name: str
    state_dir: Path
    lifetime: float
    delay: float
    command: tuple[str, ...]

    def calls(self) -> int:
        """How many runs have finished."""
        return read_state(self.state_dir)[0]

    def issued(self) -> dict[str, float]:
        """Every access key issued so far, with its expiry in epoch seconds."""
        return read_state(self.state_dir)[1]

    def fetch(self) -> dict[str, Any]:
        """Run the process once, as botocore does, and return botocore's refresh mapping."""
        result = subprocess.run(self.command, capture_output=True, check=True, timeout=60)
        answer: dict[str, Any] = json.loads(result.stdout)
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            "expiry_time": answer["Expiration"],
        }


def command_for(state_dir: Path, lifetime: float, delay: float) -> tuple[str, ...]:
    """The command line that runs this script with the current interpreter."""
    return (
        sys.executable,
        str(Path(__file__).resolve()),
        str(state_dir),
        repr(lifetime),
        repr(delay),
    )


class MakeProcessProfile(Protocol):
    """The ``make_process_profile`` fixture: add a profile to the test's config file."""

    def __call__(self, *, lifetime: float = ..., delay: float = ...) -> ProcessProfile: ...


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(f"usage: {argv[0]} STATE_DIR LIFETIME DELAY", file=sys.stderr)
        return 2
    state_dir, lifetime, delay = Path(argv[1]), float(argv[2]), float(argv[3])
    time.sleep(delay)
    print(json.dumps(issue(state_dir, lifetime)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
