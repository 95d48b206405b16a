"""Accounts: users, their rights per path, and the managers that look them up."""

from gateway.users.addresses import AddressRules
from gateway.users.filerules import FileRules
from gateway.users.managers import AbstractUserManager, MemoryUserManager
from gateway.users.model import Permission, User
from gateway.users.rules import is_stricter, stricter_rule_within

__all__ = (
    "AbstractUserManager",
    "AddressRules",
    "FileRules",
    "MemoryUserManager",
    "Permission",
    "User",
    "is_stricter",
    "stricter_rule_within",
)
