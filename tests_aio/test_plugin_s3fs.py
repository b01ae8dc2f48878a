"""Zero-code mode on aiobotocore: s3fs, covered by ``BOTOCORE_EXPERIMENTAL__PLUGINS`` alone.

s3fs makes its own ``AioSession`` and client, and a new pair on every
``connect(refresh=True)``. The scenario (``s3fs`` in ``tests/_plugin_probe.py``)
runs in a fresh interpreter against the moto server, on a counted
``credential_process`` profile whose credentials outlive the test. s3fs is
installed in the ``aio`` tox environment (tox.ini), the one that runs this file.
"""

from __future__ import annotations

import pytest

from tests._plugin_probe import (
    AIO_BACKGROUND,
    AIO_BOTOCORE_REFRESHABLE,
    S3FS_RECONNECTS,
    run_probe,
)
from tests._process_creds import MakeProcessProfile

pytestmark = pytest.mark.integration


def test_s3fs_signs_with_background_credentials_and_reconnects_add_no_refresher(
    make_process_profile: MakeProcessProfile, moto_endpoint: str
) -> None:
    profile = make_process_profile(lifetime=3600.0, delay=0.05)
    report = run_probe(
        "s3fs", profile=profile.name, state_dir=profile.state_dir, endpoint=moto_endpoint
    )

    assert report.credentials == [AIO_BACKGROUND]
    assert report.startup_fetches == 1
    # One refresher after the first write and read, and still one after each
    # connect(refresh=True): each new session over the profile shares it.
    assert report.refreshers_seen == [1] * (2 + S3FS_RECONNECTS)
    # The first reconnect's session resolves on its own (botocreds was loaded
    # after the first session resolved); the later ones share without resolving.
    assert report.fetches == report.startup_fetches + 1
    assert report.request_path_mints == 0


def test_s3fs_without_the_variable_signs_with_aiobotocores_credentials(
    make_process_profile: MakeProcessProfile, moto_endpoint: str
) -> None:
    """The baseline: the probe tells the two apart, and each reconnect fetches again."""
    profile = make_process_profile(lifetime=3600.0, delay=0.05)
    report = run_probe(
        "s3fs",
        profile=profile.name,
        state_dir=profile.state_dir,
        endpoint=moto_endpoint,
        plugin=False,
    )

    assert report.credentials == [AIO_BOTOCORE_REFRESHABLE]
    assert report.startup_fetches == 1
    assert report.fetches == 1 + S3FS_RECONNECTS
    assert report.refreshers_seen == [0] * (2 + S3FS_RECONNECTS)
