"""botocreds with asyncio: an aiobotocore client whose role credentials refresh in the background.

The role's credentials come from an async assume-role fetch, the kind of
coroutine aiobotocore's own providers use. An ``AioRefresher`` runs that fetch
on botocreds' own event loop, on a background thread, ahead of expiry. The
application's loop keeps serving requests: a ticker coroutine measures how
late the loop wakes it while the fetches run.

Runs against a local moto server, so it needs no AWS account::

    python examples/asyncio_quickstart.py                  # starts moto on 127.0.0.1
    python examples/asyncio_quickstart.py --endpoint URL   # or uses a moto server you run
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

from _moto import moto_server
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession

import botocreds

ROLE_ARN = "arn:aws:iam::123456789012:role/asyncio-quickstart"
LIFETIME = 5  # seconds. Real STS wants 900 or more; moto takes what it is given.
POLICY = botocreds.RefreshPolicy(floor=1.0, min_interval=0.5)


class AssumeRole:
    """An async fetch function: new role credentials from STS, through aiobotocore."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._base = AioSession()
        self.threads: list[str] = []  # the thread each fetch ran on

    async def __call__(self) -> dict[str, Any]:
        self.threads.append(threading.current_thread().name)
        async with self._base.create_client(
            "sts",
            region_name="us-east-1",
            endpoint_url=self._endpoint,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            # parameter_validation=False lets DurationSeconds go below STS's minimum of 900.
            config=AioConfig(parameter_validation=False),
        ) as sts:
            answer = await sts.assume_role(
                RoleArn=ROLE_ARN, RoleSessionName="asyncio-quickstart", DurationSeconds=LIFETIME
            )
        credentials = answer["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }


async def serve(
    refresher: botocreds.AioRefresher, endpoint: str, assume_role: AssumeRole
) -> tuple[int, float]:
    """Send requests for a few credential lifetimes; return how many, and the worst loop lag."""
    worst_lag = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst_lag
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            worst_lag = max(worst_lag, time.perf_counter() - before - 0.005)

    requests = 0
    async with AioSession().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="AKIAUNUSED0000000000",  # replaced by attach()
        aws_secret_access_key="unused",
    ) as s3:
        refresher.attach(s3)
        ticking = asyncio.create_task(ticker())
        bucket = "botocreds-asyncio-quickstart"
        await s3.create_bucket(Bucket=bucket)
        deadline = time.monotonic() + 10 * LIFETIME
        while len(assume_role.threads) < 3 and time.monotonic() < deadline:  # two refreshes
            await asyncio.gather(
                *(s3.put_object(Bucket=bucket, Key=f"object-{n}", Body=b"hi") for n in range(10))
            )
            listed = (await s3.list_objects_v2(Bucket=bucket))["KeyCount"]
            requests += 11
            print(
                f"{listed:3d} objects  key ****{refresher.credentials.access_key[-4:]}"
                f"  fetches {len(assume_role.threads)}"
            )
            await asyncio.sleep(0.5)
        done.set()
        await ticking
    return requests, worst_lag


def main() -> int:
    parser = argparse.ArgumentParser(description="botocreds with asyncio, against moto")
    parser.add_argument("--endpoint", help="a running moto server, e.g. http://127.0.0.1:5000")
    endpoint_arg = parser.parse_args().endpoint

    with moto_server(endpoint_arg) as endpoint:
        assume_role = AssumeRole(endpoint)
        role = AioDeferredRefreshableCredentials(assume_role, "assume-role")
        # Once, at startup: the first fetch runs here, on botocreds' own event loop.
        with botocreds.AioRefresher(role, policy=POLICY, name="asyncio-quickstart") as refresher:
            requests, worst_lag = asyncio.run(serve(refresher, endpoint, assume_role))

    refreshes = len(assume_role.threads) - 1
    off_loop = all(name == "botocreds-aio" for name in assume_role.threads)
    ok = refreshes >= 2 and off_loop
    print(
        f"{'ok' if ok else 'FAILED'}: {requests} requests, {refreshes} refreshes, every fetch on "
        f"botocreds' own loop: {off_loop}; worst loop lag {worst_lag * 1000:.1f} ms"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
