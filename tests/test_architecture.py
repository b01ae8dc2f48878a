"""The shape of botocreds' own imports: no cycle between its modules, and pure modules stay pure.

Both are read from the source with :mod:`ast`, not by importing it, so every
import counts wherever it is written: at module level, inside a function, or
under ``if TYPE_CHECKING:``. A cycle hidden in a function or behind
``TYPE_CHECKING`` still ties two modules together, so the cycle check counts
those too; the purity check skips ``TYPE_CHECKING`` imports, which never run.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

import botocreds

PACKAGE = "botocreds"
PACKAGE_DIR = Path(botocreds.__file__).parent

#: Modules that make decisions only: the same input gives the same answer, so
#: nothing they import, at any depth within botocreds, may read a clock, draw
#: random numbers, start threads or loops, read the environment, or talk to AWS.
PURE_MODULES = ("botocreds._policy", "botocreds._breaker", "botocreds._core")

#: Top-level modules a pure module must not reach; a submodule counts as its parent.
IMPURE = frozenset(
    {"time", "random", "threading", "asyncio", "os", "botocore", "boto3", "aiobotocore"}
)


@dataclass(frozen=True)
class Module:
    """One module's source, under its dotted name."""

    name: str
    source: str
    is_package: bool = False
    filename: str = "<string>"


@dataclass(frozen=True)
class Import:
    """One imported module: its absolute dotted name, where, and whether it only type-checks."""

    target: str
    line: int
    type_only: bool

    @property
    def internal(self) -> bool:
        return self.target == PACKAGE or self.target.startswith(f"{PACKAGE}.")


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _resolve(module: Module, level: int, name: str | None) -> str:
    """The absolute name ``from <level dots><name>`` means inside ``module``."""
    if level == 0:
        assert name is not None
        return name
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    bits = package.rsplit(".", level - 1)
    if len(bits) < level or not bits[0]:
        raise ValueError(f"{module.filename}: relative import beyond the top-level package")
    return f"{bits[0]}.{name}" if name else bits[0]


class _Collector(ast.NodeVisitor):
    def __init__(self, module: Module, known: frozenset[str]) -> None:
        self.module = module
        self.known = known
        self.imports: list[Import] = []
        self._type_only = False

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        outer, self._type_only = self._type_only, True
        for statement in node.body:
            self.visit(statement)
        self._type_only = outer
        for statement in node.orelse:
            self.visit(statement)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.module, node.level, node.module)
        if base == "__future__":
            return
        for alias in node.names:
            # `from package import name` imports the submodule if there is one,
            # and otherwise takes an attribute of the package itself.
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in self.known else base, node)

    def _add(self, target: str, node: ast.stmt) -> None:
        self.imports.append(Import(target, node.lineno, self._type_only))


def imports_of(module: Module, known: Iterable[str]) -> list[Import]:
    """Every module ``module`` imports, in source order; ``known`` names the package's modules."""
    collector = _Collector(module, frozenset(known))
    collector.visit(ast.parse(module.source, module.filename))
    return collector.imports


def package_modules(directory: Path = PACKAGE_DIR) -> dict[str, Module]:
    """Every module of the package in ``directory``, by dotted name."""
    modules = {}
    for path in sorted(directory.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(directory).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(name, path.read_text(encoding="utf-8"), is_package, str(path))
    return modules


def synthetic(sources: Mapping[str, str]) -> dict[str, Module]:
    """Modules made from source strings; ``botocreds`` itself is the package."""
    return {name: Module(name, text, name == PACKAGE) for name, text in sources.items()}


# -- the import graph and its cycles -------------------------------------------


def import_graph(modules: Mapping[str, Module]) -> dict[str, dict[str, Import]]:
    """importer -> {imported botocreds module: its first import}, all imports counted."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in modules}
    for name, module in modules.items():
        for found in imports_of(module, modules):
            if not found.internal:
                continue
            # Running `python -m botocreds` imports the package first anyway.
            if name == f"{PACKAGE}.__main__" and found.target == PACKAGE:
                continue
            graph[name].setdefault(found.target, found)
    return graph


def _strongly_connected(graph: Mapping[str, Iterable[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm: each strongly connected component of ``graph``."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def connect(node: str) -> Iterator[list[str]]:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                yield from connect(successor)
                lowlink[node] = min(lowlink[node], lowlink[successor])
            elif successor in on_stack:
                lowlink[node] = min(lowlink[node], index[successor])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from connect(node)


def _shortest_cycle(graph: Mapping[str, Iterable[str]], members: list[str]) -> list[str]:
    """A shortest cycle through the first member, within the component."""
    start, inside = members[0], set(members)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(graph.get(node, ())):
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if successor in inside and successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - components have one


@dataclass(frozen=True)
class Tangle:
    """Modules that all import each other, directly or not, and one shortest cycle among them."""

    modules: list[str]
    cycle: list[str]

    def describe(self, graph: Mapping[str, Mapping[str, Import]]) -> str:
        """The modules, then the cycle as a chain of imports with the line making each."""
        lines = [f"{', '.join(self.modules)}:", f"  {self.cycle[0]}"]
        for importer, imported in pairwise(self.cycle):
            found = graph[importer][imported]
            kind = " under TYPE_CHECKING" if found.type_only else ""
            lines.append(f"    -> {imported}  ({importer} line {found.line}{kind})")
        return "\n".join(lines)


def find_tangles(graph: Mapping[str, Iterable[str]]) -> list[Tangle]:
    """Every set of mutually importing modules (a module importing itself is one too)."""
    return [
        Tangle(members, _shortest_cycle(graph, members))
        for members in _strongly_connected(graph)
        if len(members) > 1 or members[0] in graph.get(members[0], ())
    ]


def test_botocreds_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph(package_modules())
    tangles = find_tangles(graph)
    assert tangles == [], "import cycles between botocreds modules:\n" + "\n".join(
        tangle.describe(graph) for tangle in tangles
    )


def test_the_import_collector_sees_every_form_of_internal_import() -> None:
    modules = synthetic(
        {
            "botocreds": "",
            "botocreds._mod": (
                "from __future__ import annotations\n"
                "import typing\n"
                "from typing import TYPE_CHECKING\n"
                "import botocreds._a\n"
                "import botocreds\n"
                "from botocreds import _b, PublicName\n"
                "from . import _c\n"
                "from ._d import thing\n"
                "if TYPE_CHECKING:\n"
                "    from ._e import T\n"
                "else:\n"
                "    from ._f import T\n"
                "if typing.TYPE_CHECKING:\n"
                "    import botocreds._g\n"
                "def f():\n"
                "    from ._h import g\n"
                "class C:\n"
                "    def m(self):\n"
                "        import botocreds._i as i\n"
            ),
            **{f"botocreds._{letter}": "" for letter in "abcdefghi"},
        }
    )
    imports = imports_of(modules["botocreds._mod"], modules)
    found = [(i.target, i.type_only) for i in imports if i.internal]
    assert found == [
        ("botocreds._a", False),
        ("botocreds", False),
        ("botocreds._b", False),
        ("botocreds", False),
        ("botocreds._c", False),
        ("botocreds._d", False),
        ("botocreds._e", True),
        ("botocreds._f", False),
        ("botocreds._g", True),
        ("botocreds._h", False),
        ("botocreds._i", False),
    ]


def test_a_relative_import_beyond_the_package_is_refused() -> None:
    modules = synthetic({"botocreds._mod": "def f():\n    from .. import outside\n"})
    with pytest.raises(ValueError, match="relative import beyond the top-level package"):
        imports_of(modules["botocreds._mod"], modules)


def test_a_cycle_closed_in_a_function_or_under_type_checking_is_reported() -> None:
    graph = import_graph(
        synthetic(
            {
                "botocreds": "from ._a import A\n",
                "botocreds._a": "from . import _b\nA = 1\n",
                "botocreds._b": "def f():\n    import botocreds._c\n",
                "botocreds._c": (
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n"
                    "    from botocreds._a import A\n"
                ),
                "botocreds._self": "def f():\n    from . import _self\n",
                "botocreds.__main__": "from botocreds import A\n",
                "botocreds._leaf": "import botocreds._a\n",
            }
        )
    )
    tangles = find_tangles(graph)
    assert tangles == [
        Tangle(
            ["botocreds._a", "botocreds._b", "botocreds._c"],
            ["botocreds._a", "botocreds._b", "botocreds._c", "botocreds._a"],
        ),
        Tangle(["botocreds._self"], ["botocreds._self", "botocreds._self"]),
    ]
    assert tangles[0].describe(graph).splitlines() == [
        "botocreds._a, botocreds._b, botocreds._c:",
        "  botocreds._a",
        "    -> botocreds._b  (botocreds._a line 1)",
        "    -> botocreds._c  (botocreds._b line 2)",
        "    -> botocreds._a  (botocreds._c line 3 under TYPE_CHECKING)",
    ]


# -- purity ---------------------------------------------------------------------


def impurities(modules: Mapping[str, Module], root: str) -> list[str]:
    """Each import of an :data:`IMPURE` module that running ``root`` executes, at any depth.

    Follows every botocreds import that can run (function-level ones included),
    skipping those under ``TYPE_CHECKING``. Each finding names the chain of
    modules from ``root`` to the offending import.
    """
    chain: dict[str, list[str]] = {root: [root]}
    queue = deque([root])
    found = []
    while queue:
        name = queue.popleft()
        for imported in imports_of(modules[name], modules):
            if imported.type_only:
                continue
            if imported.internal:
                if imported.target not in chain and imported.target in modules:
                    chain[imported.target] = [*chain[name], imported.target]
                    queue.append(imported.target)
            elif imported.target.partition(".")[0] in IMPURE:
                path = " -> ".join(chain[name])
                found.append(f"{path} imports {imported.target} (line {imported.line})")
    return found


@pytest.mark.parametrize("name", PURE_MODULES)
def test_pure_modules_reach_no_clock_randomness_threads_environment_or_aws(name: str) -> None:
    modules = package_modules()
    filename = PACKAGE_DIR.joinpath(*name.split(".")[1:]).with_suffix(".py")
    assert name in modules, f"PURE_MODULES lists {name}, but {filename} does not exist"
    found = impurities(modules, name)
    assert found == [], f"{name} must stay pure, yet:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "statement",
    [
        "import time",
        "from time import monotonic",
        "import random as _random",
        "from threading import Lock",
        "import asyncio",
        "import os.path",
        "from os import environ",
        "from botocore.credentials import Credentials",
        "import boto3.session",
        "import aiobotocore",
    ],
)
def test_the_purity_check_catches_an_impure_import_inside_a_function(statement: str) -> None:
    modules = synthetic({"botocreds._pure": f"def decide():\n    {statement}\n"})
    [finding] = impurities(modules, "botocreds._pure")
    assert finding.startswith("botocreds._pure imports ")
    assert finding.endswith("(line 2)")


def test_the_purity_check_follows_runtime_imports_and_skips_type_checking_ones() -> None:
    modules = synthetic(
        {
            "botocreds": "from ._clocked import now\n",
            "botocreds._pure": (
                "from typing import TYPE_CHECKING\n"
                "import math, timeit\n"
                "from datetime import datetime\n"
                "from ._helper import helps\n"
                "if TYPE_CHECKING:\n"
                "    from ._typed import T\n"
            ),
            "botocreds._helper": "def helps():\n    from . import _deeper\n",
            "botocreds._deeper": "def deeper():\n    from botocreds import now\n",
            "botocreds._clocked": "import time\nnow = time.time\n",
            "botocreds._typed": "import threading\n",
        }
    )
    assert impurities(modules, "botocreds._pure") == [
        "botocreds._pure -> botocreds._helper -> botocreds._deeper -> botocreds"
        " -> botocreds._clocked imports time (line 1)"
    ]
