"""The S3 endpoint the whole test session shares (tests/s3 and tests/fsspec).

Defined once, in the top-level conftest, so one SeaweedFS serves every suite that
needs S3 instead of one per directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.s3.seaweed import REGION, S3Endpoint, SeaweedS3


@pytest.fixture(scope="session")
def s3_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A running S3 endpoint with an existing bucket."""
    # never let botocore probe an instance-metadata address for credentials
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    url = os.environ.get("GATEWAY_TEST_S3_URL")
    if url:
        key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not (key and secret):
            pytest.fail(
                "GATEWAY_TEST_S3_URL is set but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                "are not: the S3 tests need credentials for that endpoint"
            )
        import asyncio
        import time

        from .seaweed import create_bucket

        endpoint = S3Endpoint(
            url, key, secret,
            os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or REGION,
            os.environ.get("GATEWAY_TEST_S3_BUCKET", "gateway-test"),
        )
        try:
            asyncio.run(create_bucket(endpoint, time.monotonic() + 30))
        except Exception as exc:
            pytest.fail(f"the S3 endpoint {url} (GATEWAY_TEST_S3_URL) is not usable: {exc}")
        yield endpoint
        return
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    try:
        endpoint = server.start()
    except Exception as exc:
        pytest.fail(
            f"no S3 endpoint for the tests: GATEWAY_TEST_S3_URL is not set and SeaweedFS "
            f"could not start ({exc})"
        )
    try:
        yield endpoint
    finally:
        server.stop()
