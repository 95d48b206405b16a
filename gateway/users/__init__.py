"""Accounts: users, their rights per path, and the managers that look them up."""

from gateway.users.managers import AbstractUserManager, MemoryUserManager
from gateway.users.model import Permission, User
from gateway.users.rules import is_stricter, stricter_rule_within

__all__ = (
    "AbstractUserManager",
    "MemoryUserManager",
    "Permission",
    "User",
    "is_stricter",
    "stricter_rule_within",
)
