"""What every handler mixin shares: path resolution with confinement."""

from __future__ import annotations

import sys
from pathlib import PurePosixPath
from typing import Any

from backends.errors import PathEscapesRoot, PathIOError
from gateway.protocol.paths import is_within

__all__ = ("HandlerBase",)


class HandlerBase:
    """Helpers for handlers; ``Server`` provides ``get_paths`` and the settings."""

    async def resolve(self, connection: Any, argument: str) -> tuple[Any, PurePosixPath]:
        """(real, virtual) path of an argument, refusing symlinks that leave the root.

        ``get_paths`` keeps the *name* inside the root; this also asks storage where
        the name really leads, so a symlink to ``/etc`` gives 550 for every command.
        """
        real, virtual = self.get_paths(connection, argument)  # type: ignore[attr-defined]
        await self.ensure_confined(connection, real)
        return real, virtual

    async def ensure_confined(self, connection: Any, real: Any) -> None:
        root = await self._root_realpath(connection)
        resolved = await connection.path_io.realpath(real)
        if not is_within(root, resolved):
            try:
                raise PathEscapesRoot(str(real))
            except PathEscapesRoot:
                raise PathIOError("path outside root", reason=sys.exc_info()) from None

    async def _root_realpath(self, connection: Any) -> Any:
        cached = getattr(connection, "_root_realpath", None)
        if cached is None or cached[0] is not connection.user:
            resolved = await connection.path_io.realpath(connection.user_root)
            cached = (connection.user, resolved)
            connection._root_realpath = cached
        return cached[1]

    async def permission(self, connection: Any, virtual: PurePosixPath) -> Any:
        return await connection.user.get_permissions(virtual)

    async def can(self, connection: Any, virtual: PurePosixPath, right: str) -> bool:
        """Check a right and answer 550 when it is missing."""
        permission = await connection.user.get_permissions(virtual)
        if getattr(permission, right):
            return True
        connection.response("550", "permission denied")
        return False
