"""Shared fixtures: hermetic AWS settings, a local moto server, a slow credential_process."""

from __future__ import annotations

import itertools
import logging
import os
import shlex
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import botocreds
from botocreds import _install

from ._process_creds import MakeProcessProfile, ProcessProfile, command_for
from ._rejecting import RejectingEndpoint

SCHEDULER_THREAD = "botocreds-scheduler"


def pytest_configure(config: pytest.Config) -> None:
    # setup.cfg declares the marker; declare it here too in case pytest runs
    # with another configuration file (--strict-markers is on).
    declared = [line.split(":")[0].strip() for line in config.getini("markers")]
    if "integration" not in declared:
        config.addinivalue_line(
            "markers", "integration: runs real boto3 clients against a local moto server"
        )


@dataclass(frozen=True)
class AwsFiles:
    """The empty config and credentials files every test starts with."""

    config: Path
    credentials: Path


@pytest.fixture(autouse=True)
def hermetic_aws(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwsFiles]:
    """No test sees the developer's AWS settings, and none leaves a refresher running.

    Every ``AWS_*`` variable is removed (profiles, keys, tokens, role and
    container settings, endpoint overrides), and so are botocreds' own settings
    and botocore's client-plugin variable; the config and credentials files
    are empty temporary files; instance metadata is off. After the test, every
    refresher is closed and the scheduler thread is given a moment to exit.
    """
    home = tmp_path_factory.mktemp("aws")
    files = AwsFiles(config=home / "config", credentials=home / "credentials")
    files.config.touch()
    files.credentials.touch()
    for name in list(os.environ):
        # botocreds' own settings too (the test suite's BOTOCREDS_TEST_* stay), and
        # the client plugin: a test that wants either sets it.
        ours = name.startswith("BOTOCREDS_") and not name.startswith("BOTOCREDS_TEST_")
        if name.startswith("AWS_") or ours or name == "BOTOCORE_EXPERIMENTAL__PLUGINS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(files.config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(files.credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield files
    botocreds.shutdown()
    for thread in threading.enumerate():
        if thread.name == SCHEDULER_THREAD:
            thread.join(timeout=5.0)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free local port, shared by the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def make_process_profile(
    hermetic_aws: AwsFiles, tmp_path_factory: pytest.TempPathFactory
) -> MakeProcessProfile:
    """Add ``credential_process`` profiles to the test's config file.

    Each profile has its own state directory, so each counts its own runs.
    """
    serial = itertools.count(1)

    def make(*, lifetime: float = 5.0, delay: float = 0.5) -> ProcessProfile:
        name = f"process-{next(serial)}"
        state_dir = tmp_path_factory.mktemp(name)
        command = command_for(state_dir, lifetime, delay)
        with hermetic_aws.config.open("a") as config:
            config.write(
                f"[profile {name}]\n"
                f"credential_process = {shlex.join(command)}\n"
                "region = us-east-1\n\n"
            )
        return ProcessProfile(name, state_dir, lifetime, delay, command)

    return make


@pytest.fixture
def process_profile(make_process_profile: MakeProcessProfile) -> ProcessProfile:
    """One profile whose credentials live 5 s and take 0.5 s to fetch."""
    return make_process_profile()


def _forget_installation() -> None:
    botocreds.uninstall()
    _install._stepped_aside = False
    _install._warned.clear()


@pytest.fixture
def uninstalled() -> Iterator[None]:
    """The test starts and ends with botocreds uninstalled, the plugin's warnings unsaid."""
    _forget_installation()
    yield
    _forget_installation()


@pytest.fixture
def long_lived(make_process_profile: MakeProcessProfile) -> ProcessProfile:
    """A ``credential_process`` profile whose sets live an hour: adoptable as resolved."""
    return make_process_profile(lifetime=3600.0, delay=0.2)


@pytest.fixture
def rejecting_endpoint(request: pytest.FixtureRequest) -> Iterator[RejectingEndpoint]:
    """A rejecting endpoint; ``indirect`` parametrization sets how many requests it rejects."""
    server = RejectingEndpoint(rejections=getattr(request, "param", 1))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
