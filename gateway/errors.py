"""aioftp-compatible exception names."""

from __future__ import annotations

from collections.abc import Iterable

from backends.errors import AIOFTPException, PathIOError, PathIsNotAbsolute

__all__ = (
    "AIOFTPException",
    "StatusCodeError",
    "PathIsNotAbsolute",
    "PathIOError",
    "NoAvailablePort",
    "InvalidCommand",
)


def _as_tuple(value: object) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


class StatusCodeError(AIOFTPException):
    """The server answered with a code the caller did not expect.

    ``expected_codes`` and ``received_codes`` are tuples of ``Code``; ``info`` is the
    reply's text lines.
    """

    def __init__(self, expected_codes: object, received_codes: object, info: object) -> None:
        super().__init__(f"Waiting for {expected_codes} but got {received_codes} {info!r}")
        self.expected_codes = _as_tuple(expected_codes)
        self.received_codes = _as_tuple(received_codes)
        self.info = info


class NoAvailablePort(AIOFTPException, OSError):
    """Every port of ``data_ports`` is taken."""


class InvalidCommand(AIOFTPException):
    """A command line could not be understood."""
