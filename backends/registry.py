"""Which backend serves a user's root: a table from URL scheme to path-io factory.

Built-in schemes resolve without importing anything optional.  Others are named by
import string and loaded on first use, so a server that never sees ``s3://`` never
needs aiobotocore; when the package is missing the error says what to install.
Any scheme not in the table goes to the fsspec backend.

A lazily loaded backend class provides ``from_root(url, options=None) -> (factory,
real_root)`` because only it knows how to split its URL (bucket, prefix, credentials...).
A factory that holds resources (the S3 connection pool) also has ``async aclose()``.
"""

from __future__ import annotations

import importlib
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from .base import AbstractPathIO, PathIONursery
from .errors import AIOFTPException
from .local import PathIO
from .memory import MemoryPathIO

__all__ = (
    "BackendNotInstalled",
    "backend_for_root",
    "options_for_root",
    "register_backend",
    "resolve_backend",
)

Factory = Callable[..., AbstractPathIO[Any]]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class BackendNotInstalled(AIOFTPException, ImportError):
    """A root names a storage scheme whose optional package is not installed."""


@dataclass(frozen=True)
class _Entry:
    target: str | type[AbstractPathIO[Any]]  # a class, or "module:attribute"
    package: str | None = None  # what to pip install when the import fails


_BACKENDS: dict[str, _Entry] = {
    "": _Entry(PathIO),
    "file": _Entry(PathIO),
    "memory": _Entry(MemoryPathIO),
    "s3": _Entry("backends.s3:S3PathIO", "aiobotocore"),
}
_FALLBACK = _Entry("backends.fsspec:FsspecPathIO", "fsspec")

# Every memory:// root in the process is a view of one tree, whichever user or
# server asks for it, as a memory "disk" would be.
_MEMORY = PathIONursery(MemoryPathIO)


def register_backend(
    scheme: str, target: str | type[AbstractPathIO[Any]], package: str | None = None
) -> None:
    """Serve ``scheme://`` roots with ``target`` (a class or a "module:attribute" string)."""
    _BACKENDS[scheme.lower()] = _Entry(target, package)


def resolve_backend(scheme: str) -> type[AbstractPathIO[Any]]:
    """The backend class for ``scheme``, importing it now if it is named lazily."""
    scheme = scheme.lower()
    entry = _BACKENDS.get(scheme, _FALLBACK)
    if not isinstance(entry.target, str):
        return entry.target
    module_name, _, attribute = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise BackendNotInstalled(
                f"storage scheme {scheme!r} needs backend module {module_name!r}, "
                "which this installation does not have"
            ) from exc
        package = entry.package or exc.name
        raise BackendNotInstalled(
            f"storage scheme {scheme!r} needs the {package!r} package "
            f"(missing module {exc.name!r}); install it with: pip install {package}"
        ) from exc
    backend: type[AbstractPathIO[Any]] = getattr(module, attribute)
    _BACKENDS[scheme] = _Entry(backend, entry.package)
    return backend


def _file_url_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URL with a remote host is not supported: {url!r}")
    # imported here: urllib.request pulls in http.client, email and more (2 MiB)
    from urllib.request import url2pathname

    return Path(url2pathname(parts.path))


def options_for_root(root: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
    """The options one root gets: the shared keys plus its own section, if any.

    A key containing ``://`` is a section for the roots it prefixes (a scheme such
    as ``"fsspec+gcs://"`` or a root such as ``"s3://bucket/alice"``); the longest
    matching one is merged over the shared keys.  So one server can give a bucket
    and a Google Cloud project different credentials.  Without sections the options
    pass through unchanged.
    """
    sections = [key for key in options if "://" in key]
    if not sections:
        return options
    shared = {key: value for key, value in options.items() if "://" not in key}
    matching = [
        key for key in sections
        if root == key or key.endswith("://") and root.startswith(key)
        or root.startswith(key.rstrip("/") + "/")
    ]
    if matching:
        shared.update(options[max(matching, key=len)])
    return shared


def backend_for_root(
    root: str | PurePath, options: Mapping[str, Any] | None = None
) -> tuple[Factory, PurePath]:
    """Pick the path-io factory for a user's root and the root as that backend sees it.

    ``/srv/ftp/alice`` and ``file:///srv/ftp/alice`` give local disk,
    ``memory://`` (or ``memory:///sub``) the process-wide memory tree; other schemes go
    to their registered backend's ``from_root(url, options)``.  ``options`` (the
    server's ``storage_options``: endpoint, credentials, part size...) reach only
    those backends, and only when given.
    """
    if isinstance(root, PurePath):
        return PathIO, Path(root)
    match = _SCHEME.match(root)
    if match is None:
        return PathIO, Path(root)
    scheme = match.group(1).lower()
    if scheme == "file" and _BACKENDS["file"].target is PathIO:
        return PathIO, _file_url_path(root)
    if scheme == "memory" and _BACKENDS["memory"].target is MemoryPathIO:
        rest = root[match.end() :]
        return _MEMORY, PurePosixPath("/" + rest.lstrip("/"))
    backend = resolve_backend(scheme)
    from_root = getattr(backend, "from_root", None)
    if from_root is None:
        raise TypeError(
            f"{backend.__qualname__} serves {scheme!r} roots but has no "
            "from_root(url) -> (factory, real_root)"
        )
    if options is not None:
        return from_root(root, options_for_root(root, options))
    return from_root(root)
