"""Zero-code mode with real libraries: ``BOTOCORE_EXPERIMENTAL__PLUGINS`` alone covers them.

Each scenario runs in a fresh interpreter (``tests/_plugin_probe.py``) against
the moto server, with a counted ``credential_process`` profile as the source,
and the test asserts on the report it prints. The credentials live an hour, so
neither botocore nor botocreds refreshes them during a test: every fetch
counted is a startup fetch, and a fetch after startup would be one made on a
request's behalf. Where a figure is compared with plain boto3, the same
scenario runs without the variable, on a profile of its own, side by side.
"""

from __future__ import annotations

import pytest

from ._plugin_probe import (
    BACKGROUND,
    BOTOCORE_REFRESHABLE,
    SESSIONS,
    Report,
    run_probe,
)
from ._process_creds import MakeProcessProfile

pytestmark = pytest.mark.integration

LIFETIME = 3600.0  # more than botocore's 15-minute advisory window: botocore never refreshes
DELAY = 0.05  # a slow-enough source, cheap for the plain runs that fetch once per session


def probe(
    scenario: str,
    make_process_profile: MakeProcessProfile,
    endpoint: str,
    *,
    plugin: bool = True,
    extra_env: dict[str, str] | None = None,
) -> Report:
    """Run ``scenario`` on a new counted profile of its own."""
    profile = make_process_profile(lifetime=LIFETIME, delay=DELAY)
    return run_probe(
        scenario,
        profile=profile.name,
        state_dir=profile.state_dir,
        endpoint=endpoint,
        plugin=plugin,
        extra_env=extra_env,
    )


def test_boto3_default_session_clients_and_resources_are_covered_by_the_variable_alone(
    make_process_profile: MakeProcessProfile, moto_endpoint: str
) -> None:
    report = probe("default_session", make_process_profile, moto_endpoint)

    # boto3.client("s3"), boto3.resource("dynamodb"), and a client of the session
    # that setup_default_session() put in place afterwards.
    assert report.credentials == [BACKGROUND] * 3
    assert report.startup_fetches == 1
    # The second default session resolves the same profile on its own, as plain
    # boto3's does (botocreds was loaded only after the first session resolved, so
    # it cannot tell which resolution that was); it shares the one refresher, and
    # no request fetched.
    assert report.fetches == 2
    assert report.refreshers_seen == [1, 1]
    assert report.request_path_mints == 0


def test_s3transfer_workers_sign_with_background_credentials_and_fetch_as_plain_boto3_does(
    make_process_profile: MakeProcessProfile, moto_endpoint: str
) -> None:
    covered = probe("transfer", make_process_profile, moto_endpoint)
    plain = probe("transfer", make_process_profile, moto_endpoint, plugin=False)

    # Multipart upload and ranged download: parts are signed on s3transfer's threads.
    assert plain.worker_requests > 0
    assert plain.worker_signing == [BOTOCORE_REFRESHABLE]
    assert covered.worker_requests > 0
    assert covered.worker_signing == [BACKGROUND]
    assert covered.credentials == [BACKGROUND]
    assert covered.startup_fetches == plain.startup_fetches == 1
    assert covered.fetches == plain.fetches == 1
    assert covered.refreshers == 1
    assert covered.request_path_mints == 0


def test_pynamodb_models_own_botocore_session_is_covered(
    make_process_profile: MakeProcessProfile, moto_endpoint: str
) -> None:
    report = probe("pynamodb", make_process_profile, moto_endpoint)

    # pynamodb makes its client lazily, on create_table: the one fetch is that
    # session's own resolution, adopted; saving and reading fetched nothing more.
    assert report.credentials == [BACKGROUND]
    assert report.startup_fetches == 1
    assert report.fetches == 1
    assert report.refreshers == 1
    assert report.request_path_mints == 0


def test_twenty_sessions_over_one_profile_share_one_refresher_and_its_first_fetch(
    make_process_profile: MakeProcessProfile, moto_endpoint: str
) -> None:
    covered = probe("many_sessions", make_process_profile, moto_endpoint)
    plain = probe("many_sessions", make_process_profile, moto_endpoint, plugin=False)

    # Plain boto3 resolves each session on its own: one fetch per session.
    assert plain.startup_fetches == plain.fetches == SESSIONS
    assert plain.credentials == [BOTOCORE_REFRESHABLE] * SESSIONS
    # With the variable: the first session's resolution, made before botocreds was
    # loaded, and the second's, which botocreds cannot yet match to the first;
    # every later session shares their refresher without resolving.
    assert covered.startup_fetches == 2
    assert covered.fetches == covered.startup_fetches
    assert covered.credentials == [BACKGROUND] * SESSIONS
    assert covered.refreshers == 1
    assert covered.request_path_mints == 0


def test_a_bad_setting_is_logged_once_by_name_and_clients_keep_botocores_credentials(
    make_process_profile: MakeProcessProfile, moto_endpoint: str
) -> None:
    report = probe(
        "bad_setting", make_process_profile, moto_endpoint, extra_env={"BOTOCREDS_FLOOR": "banana"}
    )

    naming = [message for _, message in report.warnings if "BOTOCREDS_FLOOR" in message]
    assert len(naming) == 1, report.warnings
    # Both clients were made and answered their request, signing as botocore made them.
    assert report.credentials == [BOTOCORE_REFRESHABLE] * 2
    assert report.refreshers == 0
