"""What ``import botocreds`` loads, checked in fresh interpreters.

The claims hold whatever the dependencies' versions are: some releases of
wrapt, for one, import asyncio themselves, so "asyncio is not in sys.modules"
is not botocreds' to promise. What botocreds promises is that its own modules
import no asyncio and no aiobotocore until async code is used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

#: Runs in a fresh interpreter. Every ``import`` statement goes through
#: ``builtins.__import__``, even one whose module is already loaded, so an
#: import made by a botocreds module is seen whoever imported the module first.
PROBE = """
import builtins, json, sys

ASYNC = {"asyncio", "aiobotocore", "aioboto3", "aiohttp"}
seen = []
real_import = builtins.__import__

def watching_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    if level == 0 and name.partition(".")[0] in ASYNC and importer.partition(".")[0] == "botocreds":
        seen.append(f"{importer} imports {name}")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = watching_import
import boto3, botocreds
client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="AKIAEXAMPLE",
                      aws_secret_access_key="secret")
with botocreds.attach(client) as handle:  # sync use: attach, and the hot path
    handle.credentials.get_frozen_credentials()
sync = list(seen)
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ASYNC - {"asyncio"})
own_async = sorted(m for m in sys.modules if m in ("botocreds._aioloop",))
import botocreds._aioloop  # what async use loads first: the probe must see its import
print(json.dumps({"sync": sync, "loaded": loaded, "own_async": own_async, "after": seen}))
"""


def _probe() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_botocreds_modules_import_no_asyncio_or_aiobotocore_until_async_is_used() -> None:
    report = _probe()
    assert report["sync"] == [], report
    assert report["loaded"] == [], "no aiobotocore, aioboto3 or aiohttp module is loaded"
    assert report["own_async"] == [], "botocreds' event-loop module loads on first async use"
    # The watcher works: loading the async path is seen as botocreds importing asyncio.
    assert "botocreds._aioloop imports asyncio" in report["after"], report


def test_botocreds_works_where_aiobotocore_cannot_be_imported() -> None:
    code = (
        "import sys\n"
        "sys.modules['aiobotocore'] = None  # as if it were not installed\n"
        "import boto3, botocreds\n"
        "client = boto3.client('sts', region_name='us-east-1', aws_access_key_id='AKIAX',\n"
        "                      aws_secret_access_key='secret')\n"
        "with botocreds.attach(client) as handle:\n"
        "    print(type(handle.credentials).__name__)\n"
        "try:\n"
        "    botocreds.AioRefresher(object())\n"
        "except TypeError as error:\n"
        "    print('TypeError', 'aiobotocore' in str(error))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["BackgroundCredentials", "TypeError", "True"], out.stderr
