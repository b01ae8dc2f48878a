"""botocreds sources: an assume-role chain, a custom fetcher, all refreshed in the background.

Runs against a local moto server, so it needs no AWS account::

    python examples/role_chain.py                  # starts moto on 127.0.0.1
    python examples/role_chain.py --endpoint URL   # or uses a moto server you run
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import boto3
from _moto import moto_server

import botocreds

ACCOUNT = "123456789012"


def whoami(session: boto3.Session) -> str:
    arn: str = session.client("sts").get_caller_identity()["Arn"]
    return arn


def main() -> int:
    parser = argparse.ArgumentParser(description="botocreds sources, against moto")
    parser.add_argument("--endpoint", help="a running moto server, e.g. http://127.0.0.1:5000")
    with moto_server(parser.parse_args().endpoint) as endpoint:
        # Every client botocore makes, the internal STS ones included, talks to moto.
        os.environ["AWS_ENDPOINT_URL"] = endpoint

        base = boto3.Session(
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region_name="us-east-1",
        )
        # Two hops: base -> deployer -> reader. Each refresh of "reader" assumes it
        # again with the *current* "deployer" credentials.
        deployer = botocreds.assume_role(base, f"arn:aws:iam::{ACCOUNT}:role/deployer")
        reader = botocreds.assume_role(
            deployer,
            f"arn:aws:iam::{ACCOUNT}:role/reader",
            tags={"team": "storage"},
            duration=900,
        )
        hop1, hop2 = whoami(deployer), whoami(reader)
        print("hop 1:", hop1)
        print("hop 2:", hop2)

        s3: Any = reader.client("s3")
        s3.create_bucket(Bucket="botocreds-chain")
        print("buckets:", [b["Name"] for b in s3.list_buckets()["Buckets"]])

        # Any fetch function becomes a background-refreshed session too.
        sts: Any = base.client("sts")

        def fetch() -> dict[str, Any]:
            answer = sts.get_session_token(DurationSeconds=900)["Credentials"]
            return {
                "access_key": answer["AccessKeyId"],
                "secret_key": answer["SecretAccessKey"],
                "token": answer["SessionToken"],
                "expiry_time": answer["Expiration"],
            }

        custom = botocreds.from_fetcher(fetch)
        key = custom.client("sts", region_name="us-east-1").get_caller_identity()["UserId"]
        print("custom fetcher works:", bool(key))

    botocreds.shutdown()
    if "assumed-role/deployer/" not in hop1 or "assumed-role/reader/" not in hop2:
        print("FAILED: the chain did not assume the expected roles")
        return 1
    print("ok: a two-hop chain and a custom fetcher, refreshed in the background")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
