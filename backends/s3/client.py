"""Settings and the shared aiobotocore client: one connection pool per endpoint.

Every root on the same endpoint with the same credentials shares one client, so a
server with a thousand S3 users still holds one pool.  The client is opened on first
use and reference-counted: each :class:`~backends.s3.store.S3Store` holds one
reference and releases it in ``aclose()``; the last release closes the pool.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from .errors import translated
from .metacache import MetaCache

__all__ = ("MIB", "S3Settings", "SharedClient", "acquire_client")

logger = logging.getLogger("backends.s3")

#: aiobotocore >= 2.2x can load botocore's models off the loop; older ones cannot.
_WARM_UP = "warm_up_loader_caches" in inspect.signature(AioConfig.__init__).parameters

MIB = 1024 * 1024
#: S3's smallest part (all but the last) and largest part of a multipart upload.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB


@dataclass(frozen=True)
class S3Settings:
    """How to reach an endpoint and how to move bytes there.

    Built from server options (``Server(storage_options=...)``) with the standard AWS
    environment as the fallback: ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
    ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; credentials left unset go to botocore's
    default chain (environment, shared files, instance roles).
    """

    endpoint_url: str | None = None
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    #: "path" (MinIO, SeaweedFS, most self-hosted stores), "virtual" or "auto".
    addressing_style: str = "auto"
    #: Bytes per uploaded part; memory per upload is part_size x parts_in_flight.
    part_size: int = 8 * MIB
    parts_in_flight: int = 4
    #: Keys per ListObjectsV2 page (S3 caps it at 1000).
    list_page_size: int = 1000
    #: "CRC32" (x-amz-checksum-crc32) or "MD5" (Content-MD5), verified by the endpoint.
    checksum_algorithm: str = "CRC32"
    #: Attempts per request, botocore "standard" retry mode (backoff with jitter).
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_pool_connections: int = 64
    #: Concurrent server-side copies when a directory is renamed.
    copy_concurrency: int = 8
    #: Seconds names learned from listings and our own writes are trusted (0: off);
    #: see ``metacache`` for what another writer may see meanwhile.
    metadata_cache_ttl: float = 5.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None) -> S3Settings:
        options = dict(options or {})
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown S3 storage options: {', '.join(unknown)}")
        env = os.environ
        options.setdefault(
            "endpoint_url", env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        )
        options.setdefault(
            "region_name", env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
        for name in ("part_size", "parts_in_flight", "list_page_size", "max_attempts",
                     "max_pool_connections", "copy_concurrency"):
            if name in options:
                options[name] = int(options[name])
        for name in ("connect_timeout", "read_timeout", "metadata_cache_ttl"):
            if name in options:
                options[name] = float(options[name])
        settings = cls(**options)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.addressing_style not in ("auto", "path", "virtual"):
            raise ValueError("addressing_style must be 'auto', 'path' or 'virtual'")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
        if self.parts_in_flight < 1:
            raise ValueError("parts_in_flight must be at least 1")
        if not 1 <= self.list_page_size <= 1000:
            raise ValueError("list_page_size must be between 1 and 1000")
        if self.checksum_algorithm.upper() not in ("CRC32", "MD5"):
            raise ValueError("checksum_algorithm must be 'CRC32' or 'MD5'")
        if self.max_attempts < 1 or self.copy_concurrency < 1:
            raise ValueError("max_attempts and copy_concurrency must be at least 1")
        if not 0 <= self.metadata_cache_ttl <= 3600:
            raise ValueError("metadata_cache_ttl must be between 0 and 3600 seconds")

    def client_key(self) -> tuple[Any, ...]:
        """What makes two clients different: roots agreeing on it share one pool."""
        return (
            self.endpoint_url,
            self.region_name,
            self.aws_access_key_id,
            self.aws_secret_access_key,
            self.aws_session_token,
            self.addressing_style,
            self.max_attempts,
            self.connect_timeout,
            self.read_timeout,
            self.max_pool_connections,
            self.metadata_cache_ttl,
        )

    def client_config(self) -> AioConfig:
        extra: dict[str, Any] = {}
        if _WARM_UP:
            # load botocore's service model in a thread, not on the event loop
            extra["warm_up_loader_caches"] = True
        return AioConfig(
            s3={"addressing_style": self.addressing_style},
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.max_pool_connections,
            **extra,
        )


class SharedClient:
    """One aiobotocore S3 client, opened lazily in the running loop, and what the roots
    using it have learned about names (``metadata``)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.metadata = MetaCache(settings.metadata_cache_ttl)
        self.references = 0
        self._client: Any = None
        self._context: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        if self._loop is not loop:
            # A client belongs to the loop that opened it (its aiohttp session does).
            # One from a finished loop cannot be closed any more: drop it.
            self._client = self._context = None
            self._loop = loop
            self._lock = asyncio.Lock()
        assert self._lock is not None
        async with self._lock:
            if self._client is None:
                settings = self.settings
                context = get_session().create_client(
                    "s3",
                    endpoint_url=settings.endpoint_url,
                    region_name=settings.region_name,
                    aws_access_key_id=settings.aws_access_key_id,
                    aws_secret_access_key=settings.aws_secret_access_key,
                    aws_session_token=settings.aws_session_token,
                    config=settings.client_config(),
                )
                with translated(settings.endpoint_url or "s3"):
                    client = await context.__aenter__()
                # after botocore's own handler, which asks for 100-continue on every
                # file-like body
                client.meta.events.register_last("before-call.s3", _no_expect_continue)
                self._client = client
                self._context = context
        return self._client

    async def close(self) -> None:
        context, self._client, self._context = self._context, None, None
        loop, self._loop = self._loop, None
        if context is not None and loop is asyncio.get_running_loop():
            await context.__aexit__(None, None, None)


def _no_expect_continue(params: dict[str, Any], **_: Any) -> None:
    """Send bodies at once instead of waiting for ``100 Continue``.

    The wait costs one more round trip on every PutObject and UploadPart, and buys
    nothing here: a request the endpoint refuses (signature, permission) fails just
    the same, only after its body was sent, and our bodies are at most one part.
    """
    headers = params.get("headers")
    if headers is not None:
        headers.pop("Expect", None)


_CLIENTS: dict[tuple[Any, ...], SharedClient] = {}


def acquire_client(settings: S3Settings) -> SharedClient:
    """The shared client for these settings, with one more reference taken."""
    key = settings.client_key()
    shared = _CLIENTS.get(key)
    if shared is None:
        shared = _CLIENTS[key] = SharedClient(settings)
    shared.references += 1
    return shared


async def release_client(shared: SharedClient) -> None:
    """Give a reference back; the last one closes the pool."""
    shared.references -= 1
    if shared.references > 0:
        return
    key = shared.settings.client_key()
    if _CLIENTS.get(key) is shared:
        del _CLIENTS[key]
    await shared.close()
