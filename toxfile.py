"""tox plugin: find the interpreters that pyenv has installed but not activated.

tox looks for ``python3.10`` and its siblings on ``PATH``. pyenv puts a shim
for every version it has there, but a shim of a version that is not active
exits with "command not found", so a machine with all four Pythons would
still fail to find three. Before any environment is created, this links
``.tox/interpreters/python3.X`` to the newest installed patch release of each
version that tox.ini names (3.10 to 3.13) whose command does not run, and puts
that directory first on ``PATH``. It links only such commands, so an
interpreter that runs the ordinary way is not shadowed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tox.config.sets import CoreConfigSet
from tox.plugin import impl
from tox.session.state import State

VERSIONS = ("3.10", "3.11", "3.12", "3.13")


def _runs(command: str) -> bool:
    found = shutil.which(command)
    if found is None:
        return False
    try:
        done = subprocess.run([found, "-c", "pass"], capture_output=True, timeout=30, check=False)
    except OSError:
        return False
    return done.returncode == 0


def _patch_level(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def _pyenv_bin(version: str) -> Path | None:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        path
        for path in root.glob(f"{version}.*")
        if re.fullmatch(rf"{re.escape(version)}\.\d+", path.name)
        and (path / "bin" / f"python{version}").is_file()
    ]
    if not candidates:
        return None
    return max(candidates, key=_patch_level) / "bin"


#: Beside tox's default work directory, which this project does not change.
LINKS = Path(__file__).resolve().parent / ".tox" / "interpreters"


@impl
def tox_add_core_config(core_conf: CoreConfigSet, state: State) -> None:
    # Made anew on every run, so that a version pyenv has since activated, upgraded
    # or removed is never shadowed by a link from an earlier run.
    for stale in LINKS.glob("python*") if LINKS.is_dir() else []:
        stale.unlink()
    for version in VERSIONS:
        command = f"python{version}"
        directory = None if _runs(command) else _pyenv_bin(version)
        if directory is not None:
            LINKS.mkdir(parents=True, exist_ok=True)
            (LINKS / command).symlink_to(directory / command)
    if LINKS.is_dir():
        os.environ["PATH"] = os.pathsep.join([str(LINKS), os.environ.get("PATH", "")])
