"""The example scripts, split by whether they need aiobotocore, and how to run one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("[!_]*.py"))
_NEEDS_AIOBOTOCORE = re.compile(r"^\s*(?:from|import)\s+(?:aiobotocore|aioboto3)\b", re.MULTILINE)


def needs_aiobotocore(example: Path) -> bool:
    """Whether the script imports aiobotocore or aioboto3 (it then runs in the async suite)."""
    return _NEEDS_AIOBOTOCORE.search(example.read_text()) is not None


SYNC_EXAMPLES = [example for example in EXAMPLES if not needs_aiobotocore(example)]
ASYNC_EXAMPLES = [example for example in EXAMPLES if needs_aiobotocore(example)]


def run_example(example: Path) -> str:
    """Run one script to completion and return the last line it printed, which must say ok."""
    # The hermetic_aws fixture has already cleared the AWS settings the child inherits.
    result = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith("ok:"), result.stdout
    return last_line
