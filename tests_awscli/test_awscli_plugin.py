"""The AWS CLI v1 plugin: ``[plugins] botocreds = botocreds.awscli`` covers the CLI's session.

Every run is a real ``aws`` process (``python -m awscli``) against the moto
server, on a counted ``credential_process`` profile (``tests/_process_creds.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import boto3
import pytest

from tests._process_creds import MakeProcessProfile

from .conftest import BOTOCREDS_PLUGIN, PROBE_PLUGIN, CliRun, run_aws, write_cli_config

pytestmark = pytest.mark.integration

# Inside botocore's 15-minute advisory window but outside its 10-minute mandatory
# one: plain botocore refreshes inline on every signing once the last fetch is done,
# while botocreds (refreshing at 80% of the lifetime) has nothing to do during a test.
LIFETIME = 800.0
DELAY = 0.1
SIZE = 30 * 1024 * 1024  # the CLI's multipart threshold and part size are 8 MiB: four parts


def test_awscli_still_initializes_plugins_and_emits_session_initialized(
    make_process_profile: MakeProcessProfile, tmp_path: Path
) -> None:
    """The seam botocreds.awscli relies on, checked against the installed CLI."""
    profile = make_process_profile(lifetime=LIFETIME, delay=DELAY)
    config = write_cli_config(tmp_path / "config", profile, PROBE_PLUGIN)

    log = tmp_path / "log"
    run = run_aws("configure", "get", "region", config=config, profile=profile.name, probe_log=log)

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "us-east-1"
    assert run.probe[:1] == ["awscli_initialize"], (
        "awscli no longer calls module.awscli_initialize(event_hooks) for a [plugins] entry "
        f"(awscli/plugin.py load_plugins); the probe saw {run.probe}"
    )
    # Emitted with the CLI's botocore session, on the emitter the plugin registered on.
    assert "session-initialized botocore.session.Session same" in run.probe, (
        "awscli no longer emits session-initialized with its botocore session "
        f"(awscli/clidriver.py CLIDriver._emit_session_event); the probe saw {run.probe}"
    )


def copy_there_and_back(
    source: Path, *, bucket: str, endpoint: str, config: Path, profile: str, log: Path
) -> list[CliRun]:
    """``aws s3 cp`` the file to the bucket, then back beside it; both runs must succeed."""
    key = f"s3://{bucket}/{config.stem}"
    back = source.with_name(f"{config.stem}-back")
    flags = ("--endpoint-url", endpoint, "--only-show-errors", "--no-progress")
    runs = [
        run_aws("s3", "cp", *pair, *flags, config=config, profile=profile, probe_log=log)
        for pair in ((str(source), key), (key, str(back)))
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert digest(back) == digest(source)
    return runs


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_s3_cp_of_a_multipart_file_there_and_back_fetches_at_most_twice_with_the_plugin(
    make_process_profile: MakeProcessProfile, moto_endpoint: str, tmp_path: Path
) -> None:
    """A 30 MiB ``aws s3 cp`` up and down, with and without botocreds, side by side.

    Observed on a 2-core machine (awscli 1.46.3, botocore 1.43.62, three runs
    each): without the plugin the source ran 7 times over the two commands (11
    requests signed), botocore refreshing inline on the signing path, its
    transfer threads' included; with it, 2 times, one per CLI process. Asserted:
    botocreds' bound, and that the plain run, measured in the same test, made more.
    """
    bucket = "cli-plugin-transfer"
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    source = tmp_path / "payload"
    source.write_bytes(bytes(range(256)) * (SIZE // 256))

    covered_profile = make_process_profile(lifetime=LIFETIME, delay=DELAY)
    covered = copy_there_and_back(
        source,
        bucket=bucket,
        endpoint=moto_endpoint,
        config=write_cli_config(
            tmp_path / "covered", covered_profile, {**BOTOCREDS_PLUGIN, **PROBE_PLUGIN}
        ),
        profile=covered_profile.name,
        log=tmp_path / "covered.log",
    )
    plain_profile = make_process_profile(lifetime=LIFETIME, delay=DELAY)
    plain = copy_there_and_back(
        source,
        bucket=bucket,
        endpoint=moto_endpoint,
        config=write_cli_config(tmp_path / "plain", plain_profile, PROBE_PLUGIN),
        profile=plain_profile.name,
        log=tmp_path / "plain.log",
    )

    covered_signed = {line for line in covered[-1].probe if line.startswith("signed ")}
    plain_signed = {line for line in plain[-1].probe if line.startswith("signed ")}
    assert covered_signed == {"signed BackgroundCredentials"}
    assert plain_signed == {"signed RefreshableCredentials"}
    assert covered_profile.calls() <= 2
    assert plain_profile.calls() > covered_profile.calls()
