"""Incomplete multipart uploads left by a killed process are aborted at recovery
(``backends.s3.cleanup``), against the real S3 test endpoint.

Uploads are created with a plain client, as a killed server leaves them.  "Old" is
set by the cleanup's ``now`` (its clock), never by waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from backends.recovery import recover_root, recovery_for_root

from .conftest import open_uploads, raw_client

HOUR = 3600.0


async def _begin(client: Any, bucket: str, key: str, parts: int = 0) -> str:
    upload = await client.create_multipart_upload(Bucket=bucket, Key=key)
    for number in range(1, parts + 1):
        await client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                 PartNumber=number, Body=b"x" * 1024)
    return str(upload["UploadId"])


async def _objects(client: Any, bucket: str, prefix: str) -> list[str]:
    page = await client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in page.get("Contents") or ()]


async def test_stale_uploads_under_the_root_are_aborted(s3_service, s3_options, s3_prefix) -> None:
    bucket = s3_service.bucket
    root = f"s3://{bucket}/{s3_prefix}"
    outside = f"{s3_prefix}-other/kept.bin"  # shares the prefix's text, not its directory
    async with raw_client(s3_service) as client:
        await client.put_object(Bucket=bucket, Key=f"{s3_prefix}/done.bin", Body=b"complete")
        await _begin(client, bucket, f"{s3_prefix}/empty.bin")
        await _begin(client, bucket, f"{s3_prefix}/sub/half.bin", parts=2)
        other = await _begin(client, bucket, outside, parts=1)
        try:
            # fresh: an upload may still be running on another node
            report = await recover_root(root, HOUR, options=s3_options)
            assert report is not None and report.done
            assert report.actions == [] and report.kept == 2
            assert len(await open_uploads(client, bucket, s3_prefix + "/")) == 2

            # a dry run says what it would do, and does nothing
            later = time.time() + 2 * HOUR
            dry = recovery_for_root(root, HOUR, options=s3_options, dry_run=True, now=later)
            assert dry is not None
            try:
                assert await dry.run()
            finally:
                await dry.aclose()
            assert sorted(a.kind for a in dry.report.actions) == ["would abort"] * 2
            assert len(await open_uploads(client, bucket, s3_prefix + "/")) == 2

            # two hours on: both are stale and aborted, nothing else is touched
            recovery = recovery_for_root(root, HOUR, options=s3_options, now=later)
            assert recovery is not None
            try:
                assert await recovery.run()
            finally:
                await recovery.aclose()
            assert sorted(a.where for a in recovery.report.actions) == [
                f"s3://{bucket}/{s3_prefix}/empty.bin", f"s3://{bucket}/{s3_prefix}/sub/half.bin",
            ]
            assert {a.kind for a in recovery.report.actions} == {"aborted"}
            assert await open_uploads(client, bucket, s3_prefix + "/") == []
            assert await open_uploads(client, bucket, outside) == [outside]
            assert await _objects(client, bucket, s3_prefix + "/") == [f"{s3_prefix}/done.bin"]
        finally:
            await client.abort_multipart_upload(Bucket=bucket, Key=outside, UploadId=other)


async def test_a_long_upload_still_receiving_parts_is_kept(s3_service, s3_options, s3_prefix) -> None:
    """Begun before the cutoff, but a part arrived after it: another node is still
    sending it."""
    bucket = s3_service.bucket
    key = f"{s3_prefix}/long.bin"
    root = f"s3://{bucket}/{s3_prefix}"
    async with raw_client(s3_service) as client:
        upload_id = await _begin(client, bucket, key)
        [listed] = (await client.list_multipart_uploads(Bucket=bucket, Prefix=key))["Uploads"]
        begun = listed["Initiated"].timestamp()
        # the endpoint counts whole seconds: let the clock move past the start
        deadline = time.monotonic() + 10
        while time.time() < begun + 1.5:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1,
                                 Body=b"x" * 1024)
        [part] = (await client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id))["Parts"]
        last = part["LastModified"].timestamp()
        assert last > begun

        # cutoff between the start and the last part: kept
        report = await _run(root, s3_options, now=last)
        assert report.actions == [] and report.kept == 1
        assert await open_uploads(client, bucket, key) == [key]
        # cutoff after the last part: aborted
        report = await _run(root, s3_options, now=last + 1)
        assert [a.kind for a in report.actions] == ["aborted"]
        assert await open_uploads(client, bucket, key) == []


async def _run(root: str, options: dict[str, Any], *, now: float) -> Any:
    recovery = recovery_for_root(root, 0, options=options, now=now)
    assert recovery is not None
    try:
        assert await recovery.run()
    finally:
        await recovery.aclose()
    return recovery.report


async def test_an_unreachable_endpoint_is_one_error(s3_options, s3_prefix) -> None:
    options = {**s3_options, "endpoint_url": "http://127.0.0.1:9", "max_attempts": 1,
               "connect_timeout": 2}
    report = await recover_root(f"s3://bucket/{s3_prefix}", HOUR, options=options)
    assert report is not None and report.done
    assert report.actions == []
    [error] = report.errors
    assert error.startswith("cannot list multipart uploads")
