"""What ``import botocreds`` loads, checked in fresh interpreters.

``import botocreds`` loads no module but :mod:`botocreds._version`: every
public name is imported from its module on first use. Sync use (``attach()``,
``wrap()``) then loads the refresh machinery, and nothing of the shared caches,
metrics, CLI, STS helpers or event loop until they are used.

The claims hold whatever the dependencies' versions are: some releases of
wrapt, for one, import asyncio themselves, so "asyncio is not in sys.modules"
is not botocreds' to promise. What botocreds promises is that its own modules
import no asyncio and no aiobotocore until async code is used.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import botocreds

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


#: Loaded on first use only: never by ``import botocreds`` or ``import botocreds.plugin``.
#: A name covers its submodules; a trailing ``*`` makes it a prefix.
FIRST_USE_ONLY = (
    "boto3",
    "wrapt",
    "asyncio",
    "aiobotocore",
    "aioboto3",
    "aiohttp",
    "redis",
    "cryptography",
    "prometheus_client",
    "opentelemetry",
    "botocreds._aio*",
    "botocreds._filecache",
    "botocreds._safedir",
    "botocreds._rediscache",
    "botocreds._prometheus",
    "botocreds._otel",
    "botocreds._cli",
    "botocreds._sts",
)

#: Loaded by neither ``attach()`` nor ``wrap()`` of a sync client or session.
NOT_FOR_SYNC_USE = (
    "aiobotocore",
    "aioboto3",
    "aiohttp",
    "redis",
    "cryptography",
    "prometheus_client",
    "opentelemetry",
    "botocreds._aioloop",
    "botocreds._filecache",
    "botocreds._safedir",
    "botocreds._rediscache",
    "botocreds._metrics",
    "botocreds._prometheus",
    "botocreds._otel",
    "botocreds._cli",
    "botocreds._sts",
)

#: Runs in a fresh interpreter: the modules ``sys.argv[1]`` newly loads, as JSON.
NEWLY_LOADED = """
import json, sys
before = set(sys.modules)
exec(sys.argv[1])
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _newly_loaded(statements: str) -> list[str]:
    """The modules that running ``statements`` in a fresh interpreter loads."""
    done = subprocess.run(
        [sys.executable, "-c", NEWLY_LOADED, statements],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def _matching(loaded: list[str], names: tuple[str, ...]) -> list[str]:
    """The modules in ``loaded`` that ``names`` cover (see :data:`FIRST_USE_ONLY`)."""

    def covered(module: str, name: str) -> bool:
        if name.endswith("*"):
            return module.startswith(name[:-1])
        return module == name or module.startswith(f"{name}.")

    return [m for m in loaded if any(covered(m, name) for name in names)]


def _own(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m == "botocreds" or m.startswith("botocreds.")]


def test_import_botocreds_loads_its_version_and_nothing_used_on_first_use_only() -> None:
    loaded = _newly_loaded("import botocreds")
    assert _own(loaded) == ["botocreds", "botocreds._version"]
    assert _matching(loaded, FIRST_USE_ONLY) == []


def test_import_botocreds_plugin_loads_no_other_botocreds_module() -> None:
    # botocore imports the plugin module while it creates the first client.
    loaded = _newly_loaded("import botocreds.plugin")
    assert _own(loaded) == ["botocreds", "botocreds._version", "botocreds.plugin"]
    assert _matching(loaded, FIRST_USE_ONLY) == []


def test_sync_attach_and_wrap_load_no_shared_tier_metrics_cli_sts_or_event_loop() -> None:
    loaded = _newly_loaded(
        "import boto3, botocreds\n"
        "keys = dict(region_name='us-east-1', aws_access_key_id='AKIAEXAMPLE',\n"
        "            aws_secret_access_key='secret')\n"
        "with botocreds.attach(boto3.client('sts', **keys)) as handle:\n"
        "    handle.credentials.get_frozen_credentials()\n"
        "botocreds.wrap(boto3.Session(**keys)).client('s3')\n"
        "botocreds.shutdown()\n"
    )
    assert "botocreds._refresher" in loaded  # the probe did cover the clients
    assert _matching(loaded, NOT_FOR_SYNC_USE) == []


def test_attaching_a_botocore_client_loads_no_boto3() -> None:
    loaded = _newly_loaded(
        "import botocore.session\n"
        "client = botocore.session.get_session().create_client(\n"
        "    'sts', region_name='us-east-1', aws_access_key_id='AKIAEXAMPLE',\n"
        "    aws_secret_access_key='secret')\n"
        "import botocreds\n"
        "botocreds.attach(client).close()\n"
    )
    assert "botocreds._refresher" in loaded
    assert _matching(loaded, ("boto3",)) == []


def test_attaching_a_sync_client_loads_neither_wrapt_nor_the_async_path() -> None:
    loaded = _newly_loaded(
        "import boto3\n"
        "client = boto3.client('sts', region_name='us-east-1', aws_access_key_id='AKIAEXAMPLE',\n"
        "                      aws_secret_access_key='secret')\n"
        "import botocreds\n"
        "botocreds.attach(client).close()\n"
    )
    assert "botocreds._refresher" in loaded
    assert _matching(loaded, ("wrapt", "asyncio", "botocreds._aio*")) == []


def test_every_public_name_is_listed_and_resolves_in_a_fresh_interpreter() -> None:
    code = (
        "import json, botocreds\n"
        "listed = dir(botocreds)\n"
        "resolved = {}\n"
        "for name in botocreds.__all__:\n"
        "    namespace = {}\n"
        "    exec(f'from botocreds import {name} as value', namespace)\n"
        "    value = getattr(botocreds, name)\n"
        "    assert namespace['value'] is value, name\n"
        "    resolved[name] = name in vars(botocreds)\n"
        "print(json.dumps({'listed': listed, 'resolved': resolved}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [name for name in botocreds.__all__ if name not in report["listed"]] == []
    # Each name is kept in the module once loaded: later uses skip __getattr__.
    assert report["resolved"] == dict.fromkeys(botocreds.__all__, True)


def test_an_unknown_name_is_refused_like_any_module_attribute() -> None:
    with pytest.raises(AttributeError) as refused:
        botocreds.Nope  # type: ignore[attr-defined]  # noqa: B018
    assert str(refused.value) == "module 'botocreds' has no attribute 'Nope'"
    with pytest.raises(ImportError, match="cannot import name 'Nope' from 'botocreds'"):
        exec("from botocreds import Nope", {})


def _type_checking_imports(path: Path) -> dict[str, str]:
    """name -> module, for each ``from .module import name`` under ``if TYPE_CHECKING:``."""
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.level == 1
                for alias in statement.names:
                    found[alias.asname or alias.name] = str(statement.module)
    return found


def test_each_lazy_name_comes_from_the_module_type_checkers_read_it_from() -> None:
    lazy = botocreds._LAZY
    assert _type_checking_imports(Path(botocreds.__file__)) == lazy
    assert sorted([*lazy, "__version__"]) == sorted(botocreds.__all__)
