"""From a root's storage options to (gateway settings, filesystem keyword arguments).

The server hands every URL-rooted backend the same ``storage_options`` (narrowed to a
root's section by the registry).  This module splits them:

* keys starting with ``fsspec_`` tune this backend (chunk size, threads...);
* for S3 protocols, the native S3 backend's option names (``endpoint_url``,
  ``aws_access_key_id``, ``region_name``...) are translated to s3fs's, so one set of
  options serves ``s3://`` and ``fsspec+s3://`` roots alike;
* the native S3 backend's own tuning keys are dropped for every other protocol;
* everything else goes to the filesystem's constructor untouched (credentials,
  project, account name, host...).

It also loads the filesystem class, turning a missing optional package into
``BackendNotInstalled`` that names the extra to install, at login rather than in
the middle of a transfer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import fsspec
from fsspec.asyn import AsyncFileSystem

from ..registry import BackendNotInstalled

__all__ = ("PACKAGES", "FsspecSettings", "filesystem_class", "split_options")

MIB = 1024 * 1024

#: protocol -> (package that implements it, gateway extra that installs it)
PACKAGES: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3fs"),
    "s3a": ("s3fs", "s3fs"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "az": ("adlfs", "azure"),
    "sftp": ("paramiko", "sftp"),
    "ssh": ("paramiko", "sftp"),
    "webdav": ("webdav4", "webdav"),
    "hdfs": ("pyarrow", "hdfs"),
    "http": ("aiohttp", "http"),
    "https": ("aiohttp", "http"),
}

#: Object stores: no real directories, so an empty directory persists as a marker.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "oss", "oci", "tos"})

#: The native S3 backend's option names (``backends.s3.S3Settings``).
_NATIVE_S3 = frozenset({
    "endpoint_url", "region_name", "aws_access_key_id", "aws_secret_access_key",
    "aws_session_token", "addressing_style", "part_size", "parts_in_flight",
    "list_page_size", "checksum_algorithm", "max_attempts", "connect_timeout",
    "read_timeout", "max_pool_connections", "copy_concurrency", "metadata_cache_ttl",
})


@dataclass(frozen=True)
class FsspecSettings:
    """How this backend moves bytes; every field is set by ``fsspec_<name>``."""

    #: Bytes per read request; memory per download is about chunk_size x (readahead + 1).
    chunk_size: int = 4 * MIB
    #: Bytes per write hand-off to a file object; memory per upload is about twice it.
    write_chunk: int = 1 * MIB
    #: Chunks fetched ahead of the reader.
    readahead: int = 1
    #: Threads running a synchronous filesystem's calls (per root).
    threads: int = 16
    #: Multipart part size and parts uploading at once, for s3fs.
    part_size: int = 8 * MIB
    parts_in_flight: int = 4
    #: Persist empty directories as ``dir/`` marker objects; None: by protocol.
    dir_markers: bool | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> FsspecSettings:
        values: dict[str, Any] = {}
        known = {field.name: field for field in fields(cls)}
        for key, value in options.items():
            name = key[len("fsspec_"):]
            if name not in known:
                raise ValueError(f"unknown fsspec backend option: {key}")
            if name == "dir_markers":
                values[name] = None if value is None else _boolean(value)
            else:
                values[name] = int(value)
        settings = cls(**values)
        if min(settings.chunk_size, settings.write_chunk) < 64 * 1024 or settings.readahead < 0 or settings.threads < 1:
            raise ValueError("fsspec_chunk_size and fsspec_write_chunk >= 64 KiB, fsspec_readahead >= 0, fsspec_threads >= 1")
        if settings.part_size < 5 * MIB or settings.parts_in_flight < 1:
            raise ValueError("fsspec_part_size >= 5 MiB and fsspec_parts_in_flight >= 1")
        return settings


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def split_options(protocol: str, options: Mapping[str, Any] | None) -> tuple[FsspecSettings, dict[str, Any]]:
    """(this backend's settings, keyword arguments for the filesystem)."""
    ours: dict[str, Any] = {}
    native: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key.startswith("fsspec_"):
            ours[key] = value
        elif key in _NATIVE_S3:
            native[key] = value
        else:
            kwargs[key] = value
    if protocol in ("s3", "s3a"):
        for key in ("part_size", "parts_in_flight"):
            if key in native:
                ours.setdefault("fsspec_" + key, native[key])
        kwargs = _s3fs_kwargs(native) | kwargs
        kwargs.setdefault("use_listings_cache", False)
    elif protocol in OBJECT_STORES:
        # other sessions and other servers change the bucket: never answer from a
        # listing cached by an earlier call
        kwargs.setdefault("use_listings_cache", False)
    return FsspecSettings.from_options(ours), kwargs


def _s3fs_kwargs(native: Mapping[str, Any]) -> dict[str, Any]:
    """The native S3 option names as s3fs's constructor spells them."""
    kwargs: dict[str, Any] = {}
    for ours, theirs in (("aws_access_key_id", "key"), ("aws_secret_access_key", "secret"),
                         ("aws_session_token", "token"), ("endpoint_url", "endpoint_url")):
        if native.get(ours) is not None:
            kwargs[theirs] = native[ours]
    if native.get("region_name"):
        kwargs["client_kwargs"] = {"region_name": native["region_name"]}
    config: dict[str, Any] = {}
    if native.get("addressing_style"):
        config["s3"] = {"addressing_style": native["addressing_style"]}
    if native.get("max_attempts"):
        config["retries"] = {"max_attempts": int(native["max_attempts"]), "mode": "standard"}
    for name in ("connect_timeout", "read_timeout"):
        if native.get(name):
            config[name] = float(native[name])
    if native.get("max_pool_connections"):
        config["max_pool_connections"] = int(native["max_pool_connections"])
    if config:
        kwargs["config_kwargs"] = config
    return kwargs


def filesystem_class(protocol: str) -> type[fsspec.AbstractFileSystem]:
    """The class implementing ``protocol``, or ``BackendNotInstalled`` naming the extra."""
    try:
        return fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        package, extra = PACKAGES.get(protocol, (getattr(exc, "name", None) or "?", None))
        hint = f"pip install 'gateway[{extra}]'" if extra else f"pip install {package}"
        raise BackendNotInstalled(
            f"storage scheme {protocol!r} needs the {package!r} package, which is not "
            f"installed; install it with: {hint} ({exc})"
        ) from exc
    except ValueError as exc:
        raise ValueError(f"fsspec knows no filesystem for the protocol {protocol!r}") from exc


def is_async(cls: type[fsspec.AbstractFileSystem]) -> bool:
    return issubclass(cls, AsyncFileSystem) and bool(getattr(cls, "async_impl", True))
