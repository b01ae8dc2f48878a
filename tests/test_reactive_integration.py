"""Reactive invalidation end to end: a loopback endpoint answers ExpiredToken once.

The credentials come from moto's STS; the S3 requests go to a tiny HTTP server
on 127.0.0.1 that rejects the first request with ``ExpiredToken`` (as AWS does
when a token was revoked or the clock lied) and then answers normally.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials

import botocreds

from ._rejecting import RejectingEndpoint

pytestmark = pytest.mark.integration


def _role(moto_endpoint: str, fetches: list[str]) -> DeferredRefreshableCredentials:
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="base-secret",
        config=Config(parameter_validation=False),
    )

    def fetch() -> dict[str, Any]:
        fetches.append(threading.current_thread().name)
        answer = sts.assume_role(
            RoleArn="arn:aws:iam::123456789012:role/reactive",
            RoleSessionName="reactive",
            DurationSeconds=3600,
        )["Credentials"]
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            "expiry_time": answer["Expiration"].isoformat(),
        }

    return DeferredRefreshableCredentials(fetch, "assume-role")


def _s3(endpoint: RejectingEndpoint) -> Any:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint.url,
        aws_access_key_id="AKIAUNUSED0000000000",
        aws_secret_access_key="unused",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def test_an_expired_token_reply_is_followed_by_one_retry_with_new_credentials(
    moto_endpoint: str, rejecting_endpoint: RejectingEndpoint
) -> None:
    fetches: list[str] = []
    with botocreds.Refresher(_role(moto_endpoint, fetches)) as refresher:
        s3 = refresher.attach(_s3(rejecting_endpoint))
        assert s3.list_buckets()["Buckets"] == []
    first, retried = rejecting_endpoint.signed_with
    assert first != retried, "the retry is signed with a freshly minted set"
    assert len(fetches) == 2, "the eager mint, then one mint for the rejection"
    assert fetches[1].startswith("botocreds-mint"), "the mint ran off the request thread"


@pytest.mark.parametrize("rejecting_endpoint", [10], indirect=True)
def test_a_persistent_rejection_reaches_the_caller_after_a_single_retry(
    moto_endpoint: str, rejecting_endpoint: RejectingEndpoint
) -> None:
    fetches: list[str] = []
    with botocreds.Refresher(_role(moto_endpoint, fetches)) as refresher:
        s3 = refresher.attach(_s3(rejecting_endpoint))
        with pytest.raises(s3.exceptions.ClientError, match="ExpiredToken"):
            s3.list_buckets()
    assert len(rejecting_endpoint.signed_with) == 2
    assert len(fetches) == 2
