"""``install()``, ``uninstall()`` and the plugin's entry point, in this process.

Each test leaves botocreds uninstalled, and the plugin free to install again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.credentials import RefreshableCredentials

import botocreds
from botocreds import _botocore, _install
from botocreds.plugin import initialize_client_plugin

from ._process_creds import MakeProcessProfile, ProcessProfile
from .conftest import AwsFiles

# Every test starts and ends with botocreds uninstalled.
pytestmark = pytest.mark.usefixtures("uninstalled")


def _signs_with(client: Any) -> Any:
    return _botocore.client_credentials(client)


def _original(owner: type, name: str) -> Any:
    return _install._originals.get((owner, name), owner.__dict__[name])


class TestInstall:
    def test_sessions_created_afterwards_sign_with_background_credentials(
        self, long_lived: ProcessProfile
    ) -> None:
        botocreds.install()
        client = boto3.Session(profile_name=long_lived.name).client("s3")
        assert isinstance(_signs_with(client), botocreds.BackgroundCredentials)
        assert long_lived.calls() == 1, "botocore's resolution only: its set is adopted"

    def test_twenty_sessions_created_at_once_resolve_their_source_once(
        self, long_lived: ProcessProfile
    ) -> None:
        botocreds.install()
        sessions = [boto3.Session(profile_name=long_lived.name) for _ in range(20)]
        clients: list[Any] = []
        start = threading.Barrier(len(sessions))

        def make(session: boto3.Session) -> None:
            start.wait(timeout=30)
            clients.append(session.client("s3"))

        threads = [threading.Thread(target=make, args=(s,)) for s in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(clients) == 20
        assert long_lived.calls() == 1
        owners = {id(_signs_with(client)._owner) for client in clients}
        assert len(owners) == 1, "one refresher for the one source"

    def test_boto3_default_session_and_a_later_setup_default_session_are_covered(
        self, long_lived: ProcessProfile, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        monkeypatch.setenv("AWS_PROFILE", long_lived.name)
        botocreds.install()
        first = boto3.client("s3")
        boto3.setup_default_session(profile_name=long_lived.name)
        second = boto3.client("sqs")
        for client in (first, second):
            assert isinstance(_signs_with(client), botocreds.BackgroundCredentials)
        assert _signs_with(first)._owner is _signs_with(second)._owner
        assert long_lived.calls() == 1

    def test_a_session_resolved_before_install_is_covered_from_its_next_client(
        self, long_lived: ProcessProfile
    ) -> None:
        session = boto3.Session(profile_name=long_lived.name)
        before = session.client("s3")
        botocreds.install()
        after = session.client("s3")
        assert isinstance(_signs_with(before), RefreshableCredentials)
        assert isinstance(_signs_with(after), botocreds.BackgroundCredentials)
        assert long_lived.calls() == 1

    def test_explicit_and_static_keys_are_left_as_botocore_made_them(
        self, hermetic_aws: AwsFiles
    ) -> None:
        hermetic_aws.credentials.write_text(
            "[static]\naws_access_key_id = AKIASTATIC\naws_secret_access_key = secret\n"
        )
        botocreds.install()
        explicit = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="AKIAX", aws_secret_access_key="s"
        )
        static = boto3.Session(profile_name="static").client("s3", region_name="us-east-1")
        for client in (explicit, static):
            assert not isinstance(_signs_with(client), botocreds.BackgroundCredentials)

    def test_installing_twice_wraps_once_and_uninstall_restores_botocore(self) -> None:
        session_class = botocore.session.Session
        plain = session_class.__dict__["get_credentials"]
        botocreds.install()
        wrapped = session_class.__dict__["get_credentials"]
        assert wrapped is not plain
        botocreds.install(botocreds.RefreshPolicy(floor=30))
        assert session_class.__dict__["get_credentials"] is wrapped
        assert _install.installed()
        botocreds.uninstall()
        botocreds.uninstall()
        assert session_class.__dict__["get_credentials"] is plain
        assert session_class.__dict__["create_client"] is _original(session_class, "create_client")
        assert not _install.installed()

    def test_uninstall_stops_covering_new_clients_and_leaves_existing_ones_working(
        self, long_lived: ProcessProfile
    ) -> None:
        botocreds.install()
        session = boto3.Session(profile_name=long_lived.name)
        covered = session.client("s3")
        botocreds.uninstall()
        later = session.client("s3")
        fresh = boto3.Session(profile_name=long_lived.name).client("s3")
        assert isinstance(_signs_with(covered), botocreds.BackgroundCredentials)
        assert _signs_with(covered).get_frozen_credentials().access_key.startswith("ASIAPROC")
        for client in (later, fresh):
            assert isinstance(_signs_with(client), RefreshableCredentials)

    def test_bad_arguments_and_bad_environment_are_refused_before_anything_is_installed(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with pytest.raises(TypeError, match="RefreshPolicy"):
            botocreds.install(policy=30)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="cache"):
            botocreds.install(cache="redis://localhost")  # type: ignore[arg-type]
        monkeypatch.setenv("BOTOCREDS_FLOOR", "banana")
        with pytest.raises(ValueError, match="BOTOCREDS_FLOOR"):
            botocreds.install()
        assert not _install.installed()

    def test_the_profile_sets_knobs_and_the_environment_wins(
        self, long_lived: ProcessProfile, hermetic_aws: AwsFiles, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        text = hermetic_aws.config.read_text().replace(
            f"[profile {long_lived.name}]\n",
            f"[profile {long_lived.name}]\nbotocreds_floor = 30\nbotocreds_cooldown = 7\n",
        )
        hermetic_aws.config.write_text(text)
        monkeypatch.setenv("BOTOCREDS_FLOOR", "40")
        botocreds.install()
        client = boto3.Session(profile_name=long_lived.name).client("s3")
        policy = _signs_with(client)._owner.policy
        assert (policy.floor, policy.cooldown) == (40.0, 7.0)

    def test_a_source_that_cannot_produce_a_valid_set_raises_credentials_unavailable(
        self, make_process_profile: MakeProcessProfile
    ) -> None:
        # Every set lives 5 s, within the default 60 s floor: nothing servable.
        short = make_process_profile(lifetime=5.0, delay=0.0)
        botocreds.install()
        with pytest.raises(botocreds.CredentialsUnavailable):
            boto3.Session(profile_name=short.name).client("s3")


class TestPlugin:
    def test_the_plugin_covers_a_client_made_before_it_and_installs_for_later_ones(
        self, long_lived: ProcessProfile
    ) -> None:
        first = boto3.Session(profile_name=long_lived.name).client("s3")
        initialize_client_plugin(first)
        later = boto3.Session(profile_name=long_lived.name).client("s3")
        assert isinstance(_signs_with(first), botocreds.BackgroundCredentials)
        assert _signs_with(later) is _signs_with(first)
        assert _install.installed()

    def test_the_first_client_gets_its_profiles_settings_and_shares_with_later_sessions(
        self,
        long_lived: ProcessProfile,
        hermetic_aws: AwsFiles,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        text = hermetic_aws.config.read_text().replace(
            f"[profile {long_lived.name}]\n", f"[profile {long_lived.name}]\nbotocreds_floor = 30\n"
        )
        hermetic_aws.config.write_text(text)
        monkeypatch.setenv("AWS_PROFILE", long_lived.name)
        first = boto3.Session().client("s3")
        initialize_client_plugin(first)
        later = boto3.Session().client("s3")
        assert _signs_with(later) is _signs_with(first), "one refresher, not one per policy"
        assert _signs_with(first)._owner.policy.floor == 30.0

    def test_a_bad_setting_is_logged_once_naming_it_and_the_client_is_left_alone(
        self,
        long_lived: ProcessProfile,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.setenv("BOTOCREDS_FLOOR", "banana")
        clients = [boto3.Session(profile_name=long_lived.name).client("s3") for _ in range(3)]
        with caplog.at_level(logging.WARNING, logger="botocreds"):
            for client in clients:
                initialize_client_plugin(client)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "BOTOCREDS_FLOOR" in warnings[0].getMessage()
        for client in clients:
            assert isinstance(_signs_with(client), RefreshableCredentials)
        assert not _install.installed()

    def test_the_plugin_never_raises_and_steps_aside_for_a_source_with_no_valid_set(
        self, make_process_profile: MakeProcessProfile, caplog: pytest.LogCaptureFixture
    ) -> None:
        short = make_process_profile(lifetime=5.0, delay=0.0)
        client = boto3.Session(profile_name=short.name).client("s3")
        with caplog.at_level(logging.WARNING, logger="botocreds"):
            initialize_client_plugin(client)
            later = boto3.Session(profile_name=short.name).client("s3")
        assert isinstance(_signs_with(client), RefreshableCredentials)
        assert isinstance(_signs_with(later), RefreshableCredentials)
        assert any(r.levelno == logging.WARNING for r in caplog.records)

    def test_after_uninstall_the_plugin_stays_out_until_install(
        self, long_lived: ProcessProfile
    ) -> None:
        botocreds.install()
        botocreds.uninstall()
        client = boto3.Session(profile_name=long_lived.name).client("s3")
        initialize_client_plugin(client)
        assert isinstance(_signs_with(client), RefreshableCredentials)
        assert not _install.installed()
        botocreds.install()
        assert _install.installed()
