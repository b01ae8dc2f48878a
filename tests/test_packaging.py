"""The oldest-dependencies environment tests the floors that ``install_requires`` declares.

``tox -e floor`` constrains every install to ``tests/floor-constraints.txt`` and sets
``BOTOCREDS_TEST_FLOOR``; every other environment runs whatever the
resolver picks within ``install_requires``.
"""

from __future__ import annotations

import configparser
import os
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "tests" / "floor-constraints.txt"


def _install_requires() -> dict[str, Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].strip().splitlines()
    requirements = [Requirement(line.strip()) for line in lines if line.strip()]
    return {requirement.name: requirement for requirement in requirements}


def _floor_pins() -> dict[str, Version]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip()] = Version(version.strip())
    return pins


def test_the_floor_constraints_pin_exactly_the_install_requires_floors() -> None:
    floors = {}
    for name, requirement in _install_requires().items():
        (lower,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        floors[name] = Version(lower)
    assert _floor_pins() == floors


def test_the_installed_dependencies_are_the_floors_in_the_floor_environment() -> None:
    installed = {name: Version(metadata.version(name)) for name in _install_requires()}
    for name, requirement in _install_requires().items():
        assert requirement.specifier.contains(installed[name]), (name, installed[name])
    if os.environ.get("BOTOCREDS_TEST_FLOOR"):
        assert installed == _floor_pins()
