"""Every example that needs only botocore runs to completion and reports success.

The examples that import aiobotocore run in the async suite (``tests_aio``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._examples import SYNC_EXAMPLES, run_example


def test_there_are_sync_examples() -> None:
    assert SYNC_EXAMPLES, "examples/ has no script that runs on botocore alone"


@pytest.mark.integration
@pytest.mark.parametrize("example", SYNC_EXAMPLES, ids=[path.name for path in SYNC_EXAMPLES])
def test_example_runs_and_says_ok(example: Path) -> None:
    run_example(example)
