"""The S3 test service and S3-rooted backends.

``GATEWAY_TEST_S3_URL`` (with ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, and
optionally ``GATEWAY_TEST_S3_BUCKET``) points the tests at an existing endpoint, such
as MinIO from docker-compose.yml.  Otherwise the session starts SeaweedFS on loopback
(``tests/s3/seaweed.py``).  When neither works the tests fail, naming what is missing;
they never skip.

Each test gets its own key prefix, and its teardown checks that no multipart upload
is left open under it (the "no orphaned parts" promise) before deleting its keys.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import PurePath
from typing import Any

import pytest

from backends import AbstractPathIO, backend_for_root

from .seaweed import S3Endpoint

MIB = 1024 * 1024
#: Small parts so a few MiB already make a multipart upload.
PART_SIZE = 5 * MIB
PARTS_IN_FLIGHT = 2


@pytest.fixture
def s3_options(s3_service: S3Endpoint) -> dict[str, Any]:
    """Storage options for the test endpoint: small parts, small listing pages."""
    return s3_service.options(
        part_size=PART_SIZE, parts_in_flight=PARTS_IN_FLIGHT, list_page_size=100, max_attempts=3
    )


@asynccontextmanager
async def raw_client(endpoint: S3Endpoint) -> AsyncIterator[Any]:
    """A plain aiobotocore client, to look at the bucket behind the gateway's back."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "s3", endpoint_url=endpoint.endpoint_url, region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key, aws_secret_access_key=endpoint.secret_key,
        config=AioConfig(s3={"addressing_style": "path"}),
    ) as client:
        yield client


async def all_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = await client.list_objects_v2(**request)
        keys.extend(item["Key"] for item in page.get("Contents") or ())
        if not page.get("IsTruncated"):
            return keys
        request["ContinuationToken"] = page["NextContinuationToken"]


async def open_uploads(client: Any, bucket: str, prefix: str) -> list[str]:
    response = await client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in response.get("Uploads") or ()]


@pytest.fixture
async def s3_prefix(request: pytest.FixtureRequest, s3_service: S3Endpoint) -> AsyncIterator[str]:
    """A fresh key prefix; afterwards: no open multipart upload under it, keys deleted."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    prefix = f"t/{name}-{uuid.uuid4().hex[:8]}"
    yield prefix
    async with raw_client(s3_service) as client:
        response = await client.list_multipart_uploads(
            Bucket=s3_service.bucket, Prefix=prefix + "/"
        )
        uploads = response.get("Uploads") or ()
        for upload in uploads:
            await client.abort_multipart_upload(
                Bucket=s3_service.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        keys = await all_keys(client, s3_service.bucket, prefix + "/")
        for start in range(0, len(keys), 1000):
            await client.delete_objects(
                Bucket=s3_service.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
            )
    assert not uploads, f"multipart uploads left open: {[u['Key'] for u in uploads]}"


@pytest.fixture
async def backend(
    s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str
) -> AsyncIterator[tuple[AbstractPathIO[Any], PurePath]]:
    """The contract suite's fixture: an S3PathIO on an empty prefix, and that root."""
    factory, root = backend_for_root(f"s3://{s3_service.bucket}/{s3_prefix}", s3_options)
    try:
        yield factory(), root
    finally:
        await factory.aclose()
