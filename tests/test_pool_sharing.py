"""A pool of processes over one profile shares one source call per lifetime, with no cache key.

Real processes, as a gunicorn or celery pool would be: each runs
``botocreds.install(cache=FileCache(...))`` over the same ``credential_process``
profile, which names neither a role nor an identity; the shared entry's name is
derived from the source. Bounds are structural: a process must refresh before
every expiry on its own, so a pool that did not share would need at least one
call per process per lifetime.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ._process_creds import MakeProcessProfile

WORKER = """
import json, sys, time
import boto3, botocreds

profile, directory, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
policy = botocreds.RefreshPolicy(fraction=0.7, jitter=0.1, floor=1.0, min_interval=0.2)
botocreds.install(policy, cache=botocreds.FileCache(directory))
client = boto3.Session(profile_name=profile).client("sts", region_name="us-east-1")
signer = client._request_signer
keys, deadline = set(), time.monotonic() + seconds
while time.monotonic() < deadline:
    keys.add(signer._credentials.get_frozen_credentials().access_key)
    time.sleep(0.02)
print(json.dumps({"kind": type(signer._credentials).__name__, "keys": sorted(keys)}))
"""

WORKERS = 3
LIFETIME = 4.0
RUN = 12.0


@pytest.mark.integration
def test_a_pool_over_one_profile_makes_about_one_source_call_per_lifetime(
    make_process_profile: MakeProcessProfile, tmp_path: Path
) -> None:
    profile = make_process_profile(lifetime=LIFETIME, delay=0.1)
    cache_dir = tmp_path / "shared"
    repo = str(Path(__file__).resolve().parents[1])
    pool = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, profile.name, str(cache_dir), str(RUN)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=repo,
        )
        for _ in range(WORKERS)
    ]
    reports = []
    for worker in pool:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert {report["kind"] for report in reports} == {"BackgroundCredentials"}

    calls = profile.calls()
    # Alone, each worker would call its source at startup and at least once per
    # lifetime after that.
    alone_at_least = WORKERS * (1 + math.floor(RUN / LIFETIME))
    # Shared: one call per worker at startup (each adopts its own resolution),
    # then one call per refresh cycle for the whole pool. Cycles are at least
    # (fraction - jitter) of a lifetime apart; the pool's span is the run plus
    # the workers' start-up skew, bounded here by one lifetime.
    shortest_cycle = (0.7 - 0.1) * LIFETIME
    shared_at_most = WORKERS + math.ceil((RUN + LIFETIME) / shortest_cycle)
    assert calls <= shared_at_most < alone_at_least, (calls, shared_at_most, alone_at_least)
    # Every worker served sets that other workers minted: the pool shared them.
    seen = [set(report["keys"]) for report in reports]
    assert set.intersection(*seen), "no set was served by every worker"
