"""The fresh interpreter of scenarios 10 and 11: one way of running boto3, measured alone.

``install()`` and the client plugin change every session in the process, so
each variant runs in an interpreter of its own::

    python -m benchmarks._child startup VARIANT STATE_DIR
    python -m benchmarks._child sessions VARIANT MODE COUNT STATE_DIR STEADY_DIR SECONDS PAUSE FLOOR

``VARIANT`` is ``boto3``, ``wrap``, ``plugin`` or ``install``; ``MODE`` is
``threads`` or ``sequential``. The parent (``startup.py``,
``many_sessions.py``) sets the environment: a config file whose default
profile (and ``steady`` profile, for ``sessions``) is the counted
``credential_process`` of ``tests/_process_creds.py`` (counting under
``STATE_DIR`` and ``STEADY_DIR``), the plugin variable for ``plugin``,
``AWS_ENDPOINT_URL`` for ``startup``, ``BOTOCREDS_FLOOR`` for ``sessions``. The child prints
one JSON line. Only the standard library is imported before the clock starts,
so that the import of boto3 and botocreds is part of the time measured.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

_STARTED = time.perf_counter()

VARIANTS = ("boto3", "wrap", "plugin", "install")
#: The longest the child waits for its own threads.
CHILD_WAIT = 240.0


def signing_credentials(client: Any) -> Any:
    """The credentials object ``client`` signs with (botocore's private attribute)."""
    return client._request_signer._credentials


def owner_of(credentials: Any) -> Any:
    """What refreshes ``credentials``: a botocreds refresher, or botocore's object itself."""
    return getattr(credentials, "_owner", credentials)


def covered(credentials: Any) -> bool:
    """Whether a client signs with credentials a botocreds refresher keeps."""
    return type(credentials).__module__.startswith("botocreds")


def fetches(state_dir: str) -> int:
    """How many runs of the counted ``credential_process`` have finished."""
    from pathlib import Path

    from tests._process_creds import read_state

    return read_state(Path(state_dir))[0]


def import_variant(variant: str) -> None:
    """Import what the variant's own code imports (the plugin's botocore loads botocreds)."""
    import boto3  # noqa: F401

    if variant in ("wrap", "install"):
        import botocreds  # noqa: F401


def session_for(variant: str, floor: float | None = None, profile: str | None = None) -> Any:
    """One ``boto3.Session()`` the way the variant makes it; ``install()`` comes first."""
    import boto3

    session = boto3.Session(profile_name=profile)
    if variant == "wrap":
        import botocreds

        policy = None if floor is None else botocreds.RefreshPolicy(floor=floor)
        return botocreds.wrap(session, policy=policy)
    return session


def startup(variant: str, state_dir: str) -> dict[str, Any]:
    """Time from the interpreter's first line to one signed STS request returning."""
    import_variant(variant)
    imported = time.perf_counter()
    if variant == "install":
        import botocreds

        botocreds.install()
    sts = session_for(variant).client("sts")
    sts.get_caller_identity()
    done = time.perf_counter()
    return {
        "imports": imported - _STARTED,
        "after_imports": done - imported,
        "total": done - _STARTED,
        "fetches": fetches(state_dir),
        "covered": covered(signing_credentials(sts)),
    }


def make_clients(
    variant: str, mode: str, count: int, floor: float, profile: str | None
) -> list[Any]:
    """``count`` sessions, one STS client each: from ``count`` threads at once, or in turn."""

    def one() -> Any:
        return session_for(variant, floor, profile).client("sts")

    if mode == "sequential":
        return [one() for _ in range(count)]
    clients: list[Any] = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def build(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            clients[index] = one()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=build, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CHILD_WAIT)
    if errors or any(client is None for client in clients):
        raise RuntimeError(f"creating the clients failed: {errors[:1]!r}")
    return clients


def drive(clients: list[Any], seconds: float, pause: float) -> tuple[int, int]:
    """One thread per client signs a request every ``pause`` s; (requests, failed).

    A request is a presigned STS ``GetCallerIdentity`` URL: a full signing with
    the client's current credentials, and no network.
    """
    deadline = time.monotonic() + seconds
    counts = [[0, 0] for _ in clients]

    def loop(index: int) -> None:
        client = clients[index]
        while time.monotonic() < deadline:
            try:
                client.generate_presigned_url("get_caller_identity", Params={})
                counts[index][0] += 1
            except Exception:
                counts[index][1] += 1
            time.sleep(pause)

    threads = [
        threading.Thread(target=loop, args=(i,), name=f"bench-request-{i}", daemon=True)
        for i in range(len(clients))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + CHILD_WAIT)
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def sessions(
    variant: str,
    mode: str,
    count: int,
    state_dir: str,
    steady_dir: str,
    seconds: float,
    pause: float,
    floor: float,
) -> dict[str, Any]:
    """Fetches to create ``count`` sessions and clients, and refreshers; then a steady state.

    The first batch uses the default profile (long-lived credentials, so that
    nothing refreshes while the clients are made). With a ``steady_dir``
    (not ``-``), a second batch of ``count`` sessions on the ``steady``
    profile (short-lived credentials, counting under ``steady_dir``) is
    created the same way and driven for ``seconds``, counting fetches.
    """
    import_variant(variant)
    if variant == "install":
        import botocreds

        botocreds.install()
    clients = make_clients(variant, mode, count, floor, None)
    credentials = [signing_credentials(client) for client in clients]
    report: dict[str, Any] = {
        "startup_fetches": fetches(state_dir),
        "refreshers": len({id(owner_of(c)) for c in credentials}),
        "covered": sum(1 for c in credentials if covered(c)),
    }
    if steady_dir != "-":
        steady = make_clients(variant, mode, count, floor, "steady")
        before = fetches(steady_dir)
        started = time.time()
        requests, failed = drive(steady, seconds, pause)
        report.update(
            steady_fetches=fetches(steady_dir) - before,
            steady_started=started,
            steady_ended=time.time(),
            steady_refreshers=len({id(owner_of(signing_credentials(c))) for c in steady}),
            requests=requests,
            failed=failed,
        )
    return report


def main(argv: list[str]) -> int:
    """Run one measurement and print its JSON report."""
    if len(argv) == 3 and argv[0] == "startup" and argv[1] in VARIANTS:
        report = startup(argv[1], argv[2])
    elif len(argv) == 9 and argv[0] == "sessions" and argv[1] in VARIANTS:
        variant, mode, count, state_dir, steady_dir, seconds, pause, floor = argv[1:]
        report = sessions(
            variant,
            mode,
            int(count),
            state_dir,
            steady_dir,
            float(seconds),
            float(pause),
            float(floor),
        )
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
