"""Errors raised by storage backends.

They live here, below the protocol, because storage must not import ``gateway``;
``gateway.errors`` re-exports them under aioftp's names.

A backend reports *why* an operation failed by raising ``PathIOError`` whose
``reason`` is ``sys.exc_info()`` of the underlying cause.  The cause is one of
Python's built-in exceptions, chosen by meaning, so the protocol can map it to the
right reply without knowing which backend raised it:

* ``FileNotFoundError``   - the path does not exist
* ``FileExistsError``     - the path exists and must not
* ``NotADirectoryError``  - a directory was expected
* ``IsADirectoryError``   - a file was expected
* ``PermissionError``     - the store refused access
* ``OSError(errno.ENOTEMPTY)`` - directory not empty
* ``ConnectionError`` / ``TimeoutError`` - the store is unreachable or too slow
"""

from __future__ import annotations

__all__ = (
    "AIOFTPException",
    "PathIsNotAbsolute",
    "PathIOError",
    "PathEscapesRoot",
)


class AIOFTPException(Exception):
    """Base of every exception this package raises on purpose."""


class PathIsNotAbsolute(AIOFTPException):
    """A path that had to be absolute was not."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)


class PathIOError(AIOFTPException):
    """A storage operation failed; ``reason`` holds ``sys.exc_info()`` of the cause."""

    def __init__(self, *args: object, reason: tuple | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.reason = reason

    @property
    def cause(self) -> BaseException | None:
        """The underlying exception instance, if one was captured."""
        if self.reason and len(self.reason) > 1:
            return self.reason[1]
        return None


class PathEscapesRoot(PermissionError):
    """A path resolves (through a symlink) to a place outside the allowed root."""
