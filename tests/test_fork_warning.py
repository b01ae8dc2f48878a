"""What a forking application sees from botocreds' scheduler thread.

From Python 3.12, ``os.fork()`` in a process with more than one thread emits a
``DeprecationWarning``: a lock held by another thread at the fork stays held in
the child. botocreds' scheduler thread makes the process multi-threaded while a
refresher is open, and only then: it starts with the first refresher and exits
when the last one closes. What the at-fork handlers renew in the child, and
what they do not yet, is in the README ("Forking on Python 3.12 and later").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, os, threading, time, warnings
from datetime import datetime, timedelta, timezone

from botocore.credentials import RefreshableCredentials

import botocreds

def fetch():
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    return {"access_key": "ASIAFORKWARNING00001", "secret_key": "secret", "token": "token",
            "expiry_time": expiry.isoformat()}

def fork_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return [w.category.__name__ for w in caught if "fork()" in str(w.message)]

def scheduler_running():
    return any(t.name == "botocreds-scheduler" for t in threading.enumerate())

def os_threads():
    # What Python 3.12+ counts before it warns; a thread leaves threading.enumerate()
    # a moment before its OS thread is gone.
    return len(os.listdir("/proc/self/task"))

before = fork_warnings()
refresher = botocreds.Refresher(RefreshableCredentials.create_from_metadata(fetch(), fetch, "t"))
running = scheduler_running()
while_open = fork_warnings()
refresher.close()
deadline = time.monotonic() + 10
while (scheduler_running() or os_threads() > 1) and time.monotonic() < deadline:
    time.sleep(0.01)
after_close = fork_warnings()
print(json.dumps({"before": before, "running": running, "open": while_open,
                  "stopped": not scheduler_running() and os_threads() == 1, "closed": after_close}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_only_an_open_refresher_makes_fork_warn_and_only_on_python_312_and_later() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["running"] and report["stopped"], report
    assert report["before"] == [] and report["closed"] == [], "no refresher, no thread, no warning"
    expected = ["DeprecationWarning"] if sys.version_info >= (3, 12) else []
    assert report["open"] == expected, report
