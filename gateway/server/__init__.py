"""The FTP server (aioftp's ``aioftp.server`` names)."""

from gateway.common import AvailableConnections, Connection
from gateway.server.conditions import (
    ConnectionConditions,
    PathConditions,
    PathPermissions,
    worker,
)
from gateway.server.core import Server
from gateway.users import AbstractUserManager, MemoryUserManager, Permission, User

__all__ = (
    "AbstractUserManager",
    "AvailableConnections",
    "Connection",
    "ConnectionConditions",
    "MemoryUserManager",
    "PathConditions",
    "PathPermissions",
    "Permission",
    "Server",
    "User",
    "worker",
)
