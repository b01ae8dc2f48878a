"""Every example runs to completion and reports success."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("[!_]*.py"))


def test_there_are_examples() -> None:
    assert EXAMPLES, "examples/ has no scripts"


@pytest.mark.integration
@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs_and_says_ok(example: Path) -> None:
    # The hermetic_aws fixture has already cleared the AWS settings the child inherits.
    result = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        cwd=example.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith("ok:"), result.stdout
