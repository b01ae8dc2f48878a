"""botocreds quickstart: an S3 client whose role credentials refresh in the background.

A base session assumes a role through STS; the S3 client signs with the role's
credentials, which live only a few seconds here, so you can watch botocreds
replace them ahead of expiry while the client keeps working. No request ever
waits for STS.

Runs against a local moto server, so it needs no AWS account::

    python examples/quickstart.py                  # starts moto on 127.0.0.1
    python examples/quickstart.py --endpoint URL   # or uses a moto server you run
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import boto3
from _moto import moto_server
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials

import botocreds

ROLE_ARN = "arn:aws:iam::123456789012:role/quickstart"
LIFETIME = 5  # seconds. Real STS wants 900 or more; moto takes what it is given.
# Scaled down to match: refresh at 70-80 % of the lifetime, never later than 1 s before expiry.
POLICY = botocreds.RefreshPolicy(floor=1.0, min_interval=0.5)


class AssumeRole:
    """A botocore fetch function: new role credentials from STS on every call."""

    def __init__(self, base: boto3.Session, endpoint: str) -> None:
        # parameter_validation=False lets DurationSeconds go below STS's minimum of 900.
        self._sts = base.client(
            "sts", endpoint_url=endpoint, config=Config(parameter_validation=False)
        )
        self.threads: list[str] = []  # the thread each fetch ran on

    def __call__(self) -> dict[str, Any]:
        self.threads.append(threading.current_thread().name)
        answer = self._sts.assume_role(
            RoleArn=ROLE_ARN, RoleSessionName="quickstart", DurationSeconds=LIFETIME
        )
        credentials = answer["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }


def masked(access_key: str) -> str:
    return "****" + access_key[-4:]


def main() -> int:
    parser = argparse.ArgumentParser(description="botocreds quickstart, against moto")
    parser.add_argument("--endpoint", help="a running moto server, e.g. http://127.0.0.1:5000")
    endpoint_arg = parser.parse_args().endpoint

    with moto_server(endpoint_arg) as endpoint:
        base = boto3.Session(
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region_name="us-east-1",
        )
        assume_role = AssumeRole(base, endpoint)
        role = DeferredRefreshableCredentials(refresh_using=assume_role, method="assume-role")

        # The first fetch happens here, before any request. From now on a single
        # background thread fetches the next credentials ahead of expiry.
        with botocreds.Refresher(role, policy=POLICY, name="quickstart-role") as refresher:
            s3: Any = refresher.attach(base.client("s3", endpoint_url=endpoint))

            bucket = "botocreds-quickstart"
            s3.create_bucket(Bucket=bucket)
            requests, rounds = 1, 0
            deadline = time.monotonic() + 10 * LIFETIME
            while refresher.mint_count < 3 and time.monotonic() < deadline:  # two refreshes
                rounds += 1
                s3.put_object(Bucket=bucket, Key=f"object-{rounds}", Body=b"hello")
                listed = s3.list_objects_v2(Bucket=bucket)["KeyCount"]
                requests += 2
                print(
                    f"{listed:3d} objects  key {masked(refresher.credentials.access_key)}"
                    f"  fetches {refresher.mint_count}"
                )
                time.sleep(0.5)

    # assume_role.threads[0] is the first fetch, made by Refresher() above, before any request.
    later = assume_role.threads[1:]
    by_background = sum(1 for name in later if name.startswith("botocreds-mint-"))
    on_request_threads = len(later) - by_background
    refreshes = refresher.mint_count - 1  # new credentials published after the first set
    ok = refreshes >= 2 and on_request_threads == 0
    print(
        f"{'ok' if ok else 'FAILED'}: {requests} requests; {len(assume_role.threads)} fetches: "
        f"1 at startup, {by_background} by the background thread, "
        f"{on_request_threads} on request threads; {refreshes} refreshes"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
