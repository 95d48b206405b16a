"""Storage backends behind the FTP protocol; this package never imports ``gateway``."""

from .base import (
    DEFAULT_BLOCK_SIZE,
    AbstractAsyncLister,
    AbstractPathIO,
    AsyncLister,
    AsyncPathIOContext,
    PathIONursery,
    universal_exception,
    with_timeout,
)
from .errors import AIOFTPException, PathEscapesRoot, PathIOError, PathIsNotAbsolute
from .local import AsyncPathIO, DurablePathIO, PathIO
from .memory import MemoryPathIO, MemoryStat
from .registry import BackendNotInstalled, backend_for_root, register_backend, resolve_backend

__all__ = (
    "DEFAULT_BLOCK_SIZE",
    "AIOFTPException",
    "AbstractAsyncLister",
    "AbstractPathIO",
    "AsyncLister",
    "AsyncPathIO",
    "AsyncPathIOContext",
    "BackendNotInstalled",
    "DurablePathIO",
    "MemoryPathIO",
    "MemoryStat",
    "PathEscapesRoot",
    "PathIOError",
    "PathIONursery",
    "PathIsNotAbsolute",
    "PathIO",
    "backend_for_root",
    "register_backend",
    "resolve_backend",
    "universal_exception",
    "with_timeout",
)
