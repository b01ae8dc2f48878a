"""The benchmark suite's quick mode runs end to end, so the benchmark code cannot rot.

It runs here, in the async suite, because scenario 8 drives aiobotocore.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = [ROOT / "benchmarks" / "RESULTS.md", *sorted((ROOT / "benchmarks").glob("*.png"))]


def _digests() -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in COMMITTED}


def test_the_quick_benchmark_runs_every_scenario_and_writes_nothing_next_to_the_code() -> None:
    before = _digests()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summaries = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in summaries] == [f"[{n}]" for n in range(1, 13)], done.stdout
    assert "fetches on request threads: botocreds 0" in done.stdout
    planted = re.search(r"GET reader by (\d+) MiB, RedisCache.load by (\d+) MiB", done.stdout)
    assert planted, done.stdout
    transferred, bounded = (int(group) for group in planted.groups())
    assert bounded * 10 < transferred, "a planted value never crosses the wire to RedisCache"
    assert "wrote" not in done.stdout
    assert _digests() == before, "a quick run changed the committed results or plots"
