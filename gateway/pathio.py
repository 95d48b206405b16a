"""aioftp's ``pathio`` names; the code lives in ``backends``."""

from backends import (
    AbstractPathIO,
    AsyncPathIO,
    AsyncPathIOContext,
    MemoryPathIO,
    PathIO,
    PathIONursery,
    universal_exception,
)
from backends.errors import PathIOError, PathIsNotAbsolute

__all__ = (
    "AbstractPathIO",
    "AsyncPathIO",
    "AsyncPathIOContext",
    "MemoryPathIO",
    "PathIO",
    "PathIONursery",
    "PathIOError",
    "PathIsNotAbsolute",
    "universal_exception",
)
