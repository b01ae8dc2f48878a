"""The benchmark suite's quick mode runs end to end, so the benchmark code cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_benchmark_runs_every_scenario_and_prints_their_summaries() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-write"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summaries = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert [line[:3] for line in summaries] == [f"[{n}]" for n in range(1, 9)], done.stdout
    assert "fetches on request threads: botocreds 0" in done.stdout
