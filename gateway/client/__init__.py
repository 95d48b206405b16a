"""The FTP client (aioftp's ``aioftp.client`` module names).

``BaseClient`` speaks the control connection; ``Client`` adds files, directories,
listings and transfers; ``parsers`` holds the pure reply and listing parsers.

``ssl`` is imported here because aioftp code (and its tests) reach the standard
module as ``aioftp.client.ssl``, e.g. to patch ``create_default_context``; the
client calls it through the module at call time, so such a patch takes effect.
"""

import ssl as ssl  # the standard module, reachable as gateway.client.ssl

from gateway.client import parsers
from gateway.client.base import BaseClient, ControlStreamIO, logger
from gateway.client.client import Client, DataConnectionThrottleStreamIO
from gateway.client.parsers import BasicListInfo, ListInfo, UnixListInfo
from gateway.common import Code

__all__ = (
    "BaseClient",
    "BasicListInfo",
    "Client",
    "Code",
    "ControlStreamIO",
    "DataConnectionThrottleStreamIO",
    "ListInfo",
    "UnixListInfo",
    "logger",
    "parsers",
)
