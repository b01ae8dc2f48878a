"""Every example that needs aiobotocore runs to completion and reports success."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._examples import ASYNC_EXAMPLES, run_example


def test_there_are_async_examples() -> None:
    assert ASYNC_EXAMPLES, "examples/ has no script that imports aiobotocore"


@pytest.mark.integration
@pytest.mark.parametrize("example", ASYNC_EXAMPLES, ids=[path.name for path in ASYNC_EXAMPLES])
def test_async_example_runs_and_says_ok(example: Path) -> None:
    run_example(example)
