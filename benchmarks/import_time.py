"""Scenario 9: what ``import botocreds`` costs, against ``import botocore.session``.

botocreds is meant to be loaded into every process, so its import should cost
little beyond the botocore it needs anyway: ``import botocreds`` and
``import botocreds.plugin`` (which botocore runs while it creates the first
client) should each take at most 1.10x ``import botocore.session``. Each round
starts one fresh interpreter per statement, in an order that rotates between
rounds, so that the machine's load falls on every statement alike; an empty
interpreter (``pass``) is measured the same way and subtracted. Figures are
medians over the rounds, after one warm-up round that fills the bytecode caches.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from ._common import OUT_DIR, ScenarioResult, markdown_table

STATEMENTS = {
    "empty interpreter": "pass",
    "import botocore.session": "import botocore.session",
    "import boto3": "import boto3",
    "import botocreds": "import botocreds",
    "import botocreds.plugin": "import botocreds.plugin",
}

#: The most each botocreds statement may take, as a multiple of ``import botocore.session``.
TARGET = 1.10


def time_statement(statement: str) -> float:
    """Seconds for a fresh interpreter to run ``statement`` and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], cwd=OUT_DIR.parent, check=True)
    return time.perf_counter() - started


def measure(rounds: int) -> dict[str, float]:
    """The median seconds for each statement over ``rounds`` interleaved rounds."""
    labels = list(STATEMENTS)
    for label in labels:  # warm-up: compiled bytecode is written on a first import
        time_statement(STATEMENTS[label])
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for round_number in range(rounds):
        shift = round_number % len(labels)
        for label in labels[shift:] + labels[:shift]:
            samples[label].append(time_statement(STATEMENTS[label]))
    return {label: statistics.median(values) for label, values in samples.items()}


def times(numerator: float, denominator: float) -> str:
    """``numerator / denominator`` to two decimals, as ``"1.05x"``."""
    return f"{numerator / denominator:.2f}x" if denominator > 0 else "n/a"


def run(quick: bool) -> ScenarioResult:
    """Import times in fresh processes, net of the interpreter's own start."""
    rounds = 5 if quick else 30
    medians = measure(rounds)
    empty = medians["empty interpreter"]
    net = {label: max(0.0, seconds - empty) for label, seconds in medians.items()}
    reference = net["import botocore.session"]
    rows = [["empty interpreter", f"{empty * 1000:.0f}", "-", "-"]] + [
        [
            f"`{label}`",
            f"{medians[label] * 1000:.0f}",
            f"{net[label] * 1000:.0f}",
            times(net[label], reference),
        ]
        for label in STATEMENTS
        if label != "empty interpreter"
    ]
    ours = ", ".join(
        f"{module} {net[f'import {module}'] * 1000:.0f} ms "
        f"({times(net[f'import {module}'], reference)})"
        for module in ("botocreds", "botocreds.plugin")
    )
    summary = f"import time, fresh processes: {ours}, botocore.session {reference * 1000:.0f} ms"
    return ScenarioResult(
        number=9,
        title="Import time",
        summary=summary,
        description=(
            "Each round starts one fresh interpreter per statement, in an order that rotates "
            "between rounds; an empty interpreter (`pass`) is measured the same way and "
            "subtracted. Figures are medians, after one warm-up round that fills the bytecode "
            "caches. botocreds is loaded into every process, so its import should cost little "
            "beyond the botocore it needs anyway; `import botocreds.plugin` is what botocore "
            "runs while it creates the first client of a process that sets "
            "`BOTOCORE_EXPERIMENTAL__PLUGINS=botocreds=botocreds.plugin`."
        ),
        tables=[
            markdown_table(
                ["statement", "ms, whole process", "ms, net of the interpreter", "vs botocore"],
                rows,
            )
        ],
        notes=[
            f"Medians of {rounds} rounds; `vs botocore` divides the net times.",
            f"Target: `import botocreds` and `import botocreds.plugin` each at most "
            f"{TARGET:.2f}x `import botocore.session`. `import botocreds` loads no public name's "
            "module until that name is first used.",
        ],
    )
