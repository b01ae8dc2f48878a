"""Scenarios for the zero-code plugin tests, each run in a fresh interpreter.

Usage (from the repository root, so that this checkout's ``botocreds`` is the one imported)::

    python -m tests._plugin_probe SCENARIO STATE_DIR

The parent sets the environment: ``AWS_CONFIG_FILE`` and ``AWS_PROFILE`` name a
``credential_process`` profile whose runs are counted in ``STATE_DIR`` (see
``tests/_process_creds.py``), ``AWS_ENDPOINT_URL`` a moto server, and, for the
covered runs, ``BOTOCORE_EXPERIMENTAL__PLUGINS=botocreds=botocreds.plugin``. The
scenario uses a third-party library the way an application would, without a
line of botocreds code, and prints one JSON :class:`Report` on stdout.

:func:`run_probe` is the parent's side: it starts the interpreter and parses the report.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_VARIABLE = "BOTOCORE_EXPERIMENTAL__PLUGINS"
PLUGIN_VALUE = "botocreds=botocreds.plugin"
TIMEOUT = 120.0

# What each client signs with: botocreds' types, and botocore's own for a credential_process.
BACKGROUND = "BackgroundCredentials"
AIO_BACKGROUND = "AioBackgroundCredentials"
BOTOCORE_REFRESHABLE = "RefreshableCredentials"
AIO_BOTOCORE_REFRESHABLE = "AioRefreshableCredentials"


@dataclass
class Report:
    """What one scenario saw.

    ``startup_fetches``: runs of the ``credential_process`` once the clients
    existed, before their first request; ``fetches``: at the end.
    ``credentials``: the type name of ``client._request_signer._credentials``,
    one per client. ``worker_signing``: the type names that requests signed off
    the main thread were signed with. ``refreshers``: ``len(botocreds.health())``
    at the end of the scenario, its clients still alive; ``refreshers_seen``:
    the same after each step where a scenario counts them, the last one
    included. ``request_path_mints``: ``RequestPathMint`` events, i.e.
    requests that waited for a fetch. ``warnings``: ``(logger, message)`` of
    every WARNING-or-worse record logged.
    """

    scenario: str
    plugin: bool
    startup_fetches: int = -1
    fetches: int = -1
    credentials: list[str] = field(default_factory=list)
    worker_signing: list[str] = field(default_factory=list)
    worker_requests: int = 0
    refreshers: int = -1
    refreshers_seen: list[int] = field(default_factory=list)
    request_path_mints: int = 0
    warnings: list[tuple[str, str]] = field(default_factory=list)


class _Probe:
    """The child's side: counts fetches and collects what the scenario records."""

    def __init__(self, scenario: str, state_dir: Path) -> None:
        self.report = Report(scenario=scenario, plugin=bool(os.environ.get(PLUGIN_VARIABLE)))
        self.state_dir = state_dir
        self.endpoint = os.environ["AWS_ENDPOINT_URL"]
        # The moto server outlives each run: buckets and tables get names of their own.
        self.unique = f"probe-{uuid.uuid4().hex[:12]}"
        self._lock = threading.Lock()
        self._main = threading.main_thread()

    def fetches(self) -> int:
        from ._process_creds import read_state

        return read_state(self.state_dir)[0]

    def startup_done(self) -> None:
        self.report.startup_fetches = self.fetches()

    def covered_by(self, *clients: Any) -> None:
        """Record what ``clients`` sign with, and the refreshers while they are alive."""
        self.report.credentials = [type(credentials_of(c)).__name__ for c in clients]
        self.report.refreshers = self.count_refreshers()

    def count_refreshers(self) -> int:
        import botocreds

        count = len(botocreds.health())
        self.report.refreshers_seen.append(count)
        return count

    def record_worker_signing(self, client: Any) -> None:
        """Record the credentials type of every request ``client`` signs off the main thread."""

        def before_sign(request_signer: Any = None, **_: Any) -> None:
            if threading.current_thread() is self._main:
                return
            name = type(request_signer._credentials).__name__
            with self._lock:
                self.report.worker_requests += 1
                if name not in self.report.worker_signing:
                    self.report.worker_signing.append(name)

        client.meta.events.register("before-sign", before_sign)

    def finish(self) -> None:
        self.report.fetches = self.fetches()


class _Warnings(logging.Handler):
    """Collects every WARNING-or-worse record, from any logger, into the report."""

    def __init__(self, into: list[tuple[str, str]]) -> None:
        super().__init__(level=logging.WARNING)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        self._into.append((record.name, record.getMessage()))


def credentials_of(client: Any) -> Any:
    """The credentials object ``client`` signs with (botocore's, or botocreds' in its place)."""
    return client._request_signer._credentials


# ---- the scenarios, in the child ---------------------------------------------------------


def default_session(probe: _Probe) -> None:
    """boto3's module-level default session, then a new one from ``setup_default_session``."""
    import boto3

    s3 = boto3.client("s3")
    dynamodb = boto3.resource("dynamodb")
    probe.startup_done()
    s3.list_buckets()
    dynamodb.meta.client.list_tables()
    probe.count_refreshers()
    boto3.setup_default_session()
    s3_again = boto3.client("s3")
    s3_again.list_buckets()
    probe.covered_by(s3, dynamodb.meta.client, s3_again)


TRANSFER_SIZE = 11 * 1024 * 1024
TRANSFER_PART = 5 * 1024 * 1024  # S3's smallest part: three parts each way


def transfer(probe: _Probe) -> None:
    """s3transfer's managed upload and download, parts sent from its worker threads."""
    import tempfile

    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client("s3")
    probe.startup_done()
    probe.record_worker_signing(client)
    config = TransferConfig(
        multipart_threshold=TRANSFER_PART, multipart_chunksize=TRANSFER_PART, max_concurrency=4
    )
    bucket = probe.unique
    client.create_bucket(Bucket=bucket)
    payload = bytes(range(256)) * (TRANSFER_SIZE // 256)
    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch, "up"), Path(scratch, "down")
        source.write_bytes(payload)
        client.upload_file(str(source), bucket, "big", Config=config)
        client.download_file(bucket, "big", str(target), Config=config)
        if target.read_bytes() != payload:
            raise AssertionError("the downloaded object differs from the uploaded file")
    probe.covered_by(client)


def pynamodb_model(probe: _Probe) -> None:
    """A pynamodb Model: pynamodb makes its own botocore session and client."""
    from pynamodb.attributes import UnicodeAttribute
    from pynamodb.models import Model

    class Thing(Model):
        class Meta:
            table_name = probe.unique
            host = probe.endpoint
            region = "us-east-1"

        key = UnicodeAttribute(hash_key=True)
        value = UnicodeAttribute()

    Thing.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    probe.startup_done()
    Thing("k", value="v").save()
    if Thing.get("k").value != "v":
        raise AssertionError("pynamodb read back another value")
    probe.covered_by(Thing._get_connection().connection.client)


SESSIONS = 20


def many_sessions(probe: _Probe) -> None:
    """Twenty ``boto3.Session()``s over one profile, one STS client each.

    STS, because its service model loads fastest: twenty sessions load it twenty times.
    """
    import boto3

    clients = [boto3.Session().client("sts") for _ in range(SESSIONS)]
    probe.startup_done()
    for client in clients:
        client.get_caller_identity()
    probe.covered_by(*clients)


def bad_setting(probe: _Probe) -> None:
    """Two clients and a request each, with a botocreds setting that does not parse."""
    import boto3

    s3 = boto3.client("s3")
    dynamodb = boto3.client("dynamodb")
    probe.startup_done()
    s3.list_buckets()
    dynamodb.list_tables()
    probe.covered_by(s3, dynamodb)


S3FS_RECONNECTS = 3


def s3fs_filesystem(probe: _Probe) -> None:
    """s3fs on aiobotocore: write and read a file, then ``connect(refresh=True)`` thrice."""
    import importlib

    # Imported by name: s3fs is installed only where this scenario runs (tox -e aio).
    s3fs = importlib.import_module("s3fs")
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": probe.endpoint})
    path = f"{probe.unique}/file.txt"
    fs.mkdir(probe.unique)
    probe.startup_done()
    fs.pipe(path, b"written through s3fs")
    if fs.cat(path) != b"written through s3fs":
        raise AssertionError("s3fs read back other bytes")
    probe.count_refreshers()
    for _ in range(S3FS_RECONNECTS):
        fs.connect(refresh=True)
        fs.invalidate_cache()
        fs.cat(path)
        probe.count_refreshers()
    probe.covered_by(fs.s3)


SCENARIOS: dict[str, Callable[[_Probe], None]] = {
    "default_session": default_session,
    "transfer": transfer,
    "pynamodb": pynamodb_model,
    "many_sessions": many_sessions,
    "bad_setting": bad_setting,
    "s3fs": s3fs_filesystem,
}


def main(argv: list[str]) -> int:
    scenario, state_dir = argv[1], Path(argv[2])
    probe = _Probe(scenario, state_dir)
    logging.getLogger().addHandler(_Warnings(probe.report.warnings))

    import botocreds

    def count_request_path_mints(event: object) -> None:
        if isinstance(event, botocreds.RequestPathMint):
            probe.report.request_path_mints += 1

    botocreds.set_reporters([count_request_path_mints])
    SCENARIOS[scenario](probe)
    probe.finish()
    print(json.dumps(asdict(probe.report)))
    return 0


# ---- the parent's side -------------------------------------------------------------------


def probe_environment(
    *, profile: str, endpoint: str, plugin: bool, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's (hermetic) environment, for a child using ``profile`` and ``endpoint``.

    Any botocreds setting or plugin list inherited from the developer's shell is
    dropped, so only ``extra`` configures botocreds.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("BOTOCREDS_") and name != PLUGIN_VARIABLE
    }
    env.update(AWS_PROFILE=profile, AWS_ENDPOINT_URL=endpoint, PYTHONPATH=str(ROOT))
    if plugin:
        env[PLUGIN_VARIABLE] = PLUGIN_VALUE
    env.update(extra or {})
    return env


def run_probe(
    scenario: str,
    *,
    profile: str,
    state_dir: Path,
    endpoint: str,
    plugin: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> Report:
    """Run ``scenario`` in a fresh interpreter and return its report.

    A child that fails raises ``AssertionError`` with its stderr.
    """
    env = probe_environment(profile=profile, endpoint=endpoint, plugin=plugin, extra=extra_env)
    result = subprocess.run(
        [sys.executable, "-m", "tests._plugin_probe", scenario, str(state_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"scenario {scenario} (plugin={plugin}) exited {result.returncode}:\n{result.stderr}"
        )
    fields: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    fields["warnings"] = [tuple(pair) for pair in fields["warnings"]]
    return Report(**fields)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
