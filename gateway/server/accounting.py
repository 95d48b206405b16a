"""Per-session bookkeeping shared by sessions: connections per client address, and
which sessions still use a user's shared throttle."""

from __future__ import annotations

from typing import Any

__all__ = ("KeyCounts",)


class KeyCounts(dict[Any, int]):
    """How many holders each key has; a key is forgotten with its last holder, so
    addresses and accounts that come and go do not accumulate."""

    def add(self, key: Any) -> int:
        count = self.get(key, 0) + 1
        self[key] = count
        return count

    def remove(self, key: Any) -> int:
        """One holder of ``key`` fewer; how many are left (0: the key is gone)."""
        left = self.get(key, 1) - 1
        if left > 0:
            self[key] = left
        else:
            self.pop(key, None)
        return left
