"""The FTP client (aioftp's ``aioftp.client`` module names).

``BaseClient`` speaks the control connection; ``Client`` adds files, directories,
listings and transfers; ``parsers`` holds the pure reply and listing parsers.
"""

from gateway.client import parsers
from gateway.client.base import BaseClient, logger
from gateway.client.client import Client, DataConnectionThrottleStreamIO
from gateway.common import Code

__all__ = (
    "BaseClient",
    "Client",
    "DataConnectionThrottleStreamIO",
    "Code",
    "logger",
    "parsers",
)
