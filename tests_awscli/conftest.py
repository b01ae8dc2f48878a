"""Fixtures for the AWS CLI v1 plugin tests: a CLI config file and a way to run ``aws``.

These tests need ``awscli``, which pins botocore, so they run in an environment of
their own (``tox -e awscli``).

How AWS CLI v1 loads plugins (read from awscli 1.46's ``awscli/clidriver.py``
and ``awscli/plugin.py``): ``create_clidriver()`` passes the config file's
``[plugins]`` section, a mapping of name to module path, to ``load_plugins``,
which imports each module by its dotted path from ``sys.path`` and calls
``module.awscli_initialize(event_emitter)`` with the CLI session's emitter. The
CLI emits ``session-initialized`` with that session after the top-level
arguments (``--profile`` and the like) are applied, before the command runs.
``cli_legacy_plugin_path`` is read by AWS CLI v2 only: v1 does not look at it,
so botocreds, installed in the same environment as the CLI, needs just
``[plugins]\\nbotocreds = botocreds.awscli``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests._process_creds import ProcessProfile
from tests.conftest import hermetic_aws, make_process_profile, moto_endpoint

from ._cli_probe import LOG_VARIABLE

__all__ = ["hermetic_aws", "make_process_profile", "moto_endpoint"]

ROOT = Path(__file__).resolve().parent.parent
BOTOCREDS_PLUGIN = {"botocreds": "botocreds.awscli"}
PROBE_PLUGIN = {"probe": "tests_awscli._cli_probe"}
TIMEOUT = 180.0


def write_cli_config(path: Path, profile: ProcessProfile, plugins: Mapping[str, str]) -> Path:
    """Write an AWS config file: ``[plugins]``, and ``profile`` with its ``credential_process``."""
    lines = []
    if plugins:
        lines.append("[plugins]")
        lines.extend(f"{name} = {module}" for name, module in plugins.items())
        lines.append("")
    lines += [
        f"[profile {profile.name}]",
        f"credential_process = {shlex.join(profile.command)}",
        "region = us-east-1",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


@dataclass(frozen=True)
class CliRun:
    """One ``aws`` run: its exit code, output, and the probe plugin's log lines."""

    returncode: int
    stdout: str
    stderr: str
    probe: list[str]


def run_aws(*args: str, config: Path, profile: str, probe_log: Path) -> CliRun:
    """Run ``python -m awscli ARGS`` with ``config`` as the AWS config file.

    The environment is this test's hermetic one, without any botocreds setting
    or botocore plugin list, so only the config file's ``[plugins]`` can bring
    botocreds in. ``PYTHONPATH`` puts this checkout first, for ``botocreds``
    and the probe plugin alike.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("BOTOCREDS_") and name != "BOTOCORE_EXPERIMENTAL__PLUGINS"
    }
    env.update(
        AWS_CONFIG_FILE=str(config),
        AWS_PROFILE=profile,
        PYTHONPATH=str(ROOT),
        **{LOG_VARIABLE: str(probe_log)},
    )
    result = subprocess.run(
        [sys.executable, "-m", "awscli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    lines = probe_log.read_text().splitlines() if probe_log.exists() else []
    return CliRun(result.returncode, result.stdout, result.stderr, lines)
