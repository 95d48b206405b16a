"""Command handlers grouped by concern; ``Server`` combines the mixins."""

from gateway.server.handlers.dataports import DataPortCommands
from gateway.server.handlers.files import FileCommands
from gateway.server.handlers.hashes import HashCommands
from gateway.server.handlers.listing import ListingCommands
from gateway.server.handlers.login import LoginCommands
from gateway.server.handlers.misc import MiscCommands
from gateway.server.handlers.navigation import NavigationCommands
from gateway.server.handlers.site import SiteCommands
from gateway.server.handlers.status import StatusCommands
from gateway.server.handlers.tls import TlsCommands
from gateway.server.handlers.transfer import TransferCommands

__all__ = (
    "DataPortCommands",
    "SiteCommands",
    "StatusCommands",
    "FileCommands",
    "HashCommands",
    "ListingCommands",
    "LoginCommands",
    "MiscCommands",
    "NavigationCommands",
    "TlsCommands",
    "TransferCommands",
)
